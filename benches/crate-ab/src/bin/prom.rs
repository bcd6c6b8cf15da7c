//! Does prometheus-client 0.26 (its Prometheus text 0.0.4 encoder, `encoding::prometheus_text`)
//! write the same bytes as ferrovpn's exposition (crates/ferrovpn/src/daemon/metrics/)?
//! ferrovpn renders a snapshot; its families and samples are then fed, unchanged, to
//! prometheus-client through a `Collector`, and the two texts are compared line by line.

use std::collections::BTreeMap;

use ferrovpn::daemon::metrics::{render, ConnSnapshot, IkeEvents, SaPair, Snapshot};
use ferrovpn_esp::SaStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: String,
    kind: String,
    samples: Vec<(Vec<(String, String)>, u64)>,
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        match (c, c == '\\') {
            (_, true) => match it.next() {
                Some('n') => out.push('\n'),
                Some(x) => out.push(x),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Splits `a="x",b="y\"z"` into pairs.
fn labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, v)) = rest.split_once("=\"") {
        let mut end = 0;
        let b = v.as_bytes();
        while end < b.len() && !(b[end] == b'"' && (end == 0 || b[end - 1] != b'\\')) {
            end += 1;
        }
        out.push((k.trim_start_matches(',').to_string(), unescape(&v[..end])));
        rest = &v[(end + 1).min(v.len())..];
    }
    out
}

fn parse(text: &str) -> Vec<Family> {
    let mut fams: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            let (name, help) = r.split_once(' ').unwrap();
            fams.push(Family {
                name: name.into(),
                help: help.into(),
                kind: String::new(),
                samples: vec![],
            });
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            fams.last_mut().unwrap().kind = r.split_once(' ').unwrap().1.into();
        } else {
            let (series, v) = line.rsplit_once(' ').unwrap();
            let l = series
                .split_once('{')
                .map(|(_, l)| labels(l.trim_end_matches('}')));
            fams.last_mut()
                .unwrap()
                .samples
                .push((l.unwrap_or_default(), v.parse().unwrap()));
        }
    }
    fams
}

#[derive(Debug)]
struct Replay(Vec<Family>);

impl Collector for Replay {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let name = f.name.trim_start_matches("ferrovpn_");
            if f.kind == "counter" {
                let base = name.strip_suffix("_total").unwrap_or(name);
                let probe = ConstCounter::new(0u64);
                let mut m = enc.encode_descriptor(base, &f.help, None, probe.metric_type())?;
                for (l, v) in &f.samples {
                    ConstCounter::new(*v).encode(m.encode_family(l)?)?;
                }
            } else {
                let probe = ConstGauge::new(0i64);
                let mut m = enc.encode_descriptor(name, &f.help, None, probe.metric_type())?;
                for (l, v) in &f.samples {
                    ConstGauge::new(*v as i64).encode(m.encode_family(l)?)?;
                }
            }
        }
        Ok(())
    }
}

fn main() {
    let mut events = IkeEvents {
        messages_in: 3,
        messages_out: 4,
        ..Default::default()
    };
    events.ike_failed = BTreeMap::from([("no_response", 1)]);
    let stats = SaStats {
        packets: 10,
        bytes: 840,
        replay_drops: 2,
        ..Default::default()
    };
    let s = Snapshot {
        uptime_s: 42,
        conns: vec![
            ConnSnapshot {
                name: "site-b".into(),
                up: true,
                ike_sas: 1,
                pairs: vec![SaPair {
                    spi_in: 0xc65cbcd3,
                    spi_out: 1,
                    inbound: stats,
                    outbound: stats,
                }],
                events: events.clone(),
            },
            ConnSnapshot {
                name: "we\"ird\\name\nx".into(),
                events,
                ..Default::default()
            },
        ],
        unassigned: IkeEvents::default(),
        process: vec![("esp_unknown_spi_total", "Inbound ESP packets for no SA.", 7)],
    };
    let ours = render(&s);
    let mut reg = Registry::with_prefix("ferrovpn");
    reg.register_collector(Box::new(Replay(parse(&ours))));
    let mut theirs = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut theirs, &reg).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    println!(
        "ferrovpn: {} lines, prometheus-client: {} lines, identical lines in place: {same}",
        a.len(),
        b.len()
    );
    for (x, y) in a.iter().zip(&b).filter(|(x, y)| x != y).take(12) {
        println!("- {x}\n+ {y}");
    }
    println!("byte-identical: {}", ours == theirs);
}
