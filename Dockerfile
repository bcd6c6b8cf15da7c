# ferrovpn in a container (README.md, "Running it in a container"):
#   docker build -t ferrovpn .
#   docker run -d --name ferrovpn --network host --cap-add NET_ADMIN --device /dev/net/tun \
#       -v /etc/ferrovpn:/etc/ferrovpn:ro ferrovpn
#   docker exec ferrovpn ferrovpn status
# Docker's default capabilities already include NET_RAW (raw ESP sockets) and
# NET_BIND_SERVICE (UDP 500); NET_ADMIN (TUN, addresses, routes, rules) and the TUN device
# are what must be added.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferrovpn \
    && strip target/release/ferrovpn

FROM debian:bookworm-slim
COPY --from=build /src/target/release/ferrovpn /usr/bin/ferrovpn
COPY config/route-based.toml config/policy-based.toml /etc/ferrovpn/examples/
EXPOSE 500/udp 4500/udp
ENTRYPOINT ["/usr/bin/ferrovpn"]
CMD ["up", "-c", "/etc/ferrovpn/ferrovpn.toml"]
