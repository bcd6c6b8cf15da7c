#!/usr/bin/env python3
"""List import cycles between the modules of one crate (issue #17: "every arrow points one way").

usage: scripts/module_cycles.py CRATE_SRC_DIR [CRATE_SRC_DIR ...]
       e.g. scripts/module_cycles.py crates/ike/src crates/esp/src crates/ferrovpn/src

An edge A -> B means a file of module A names `crate::…`/`super::…` items of module B (in a `use`
or inline). Edges from a module to its own ancestors are left out (a child using its parent's
types is how Rust modules nest), as is everything after a trailing `#[cfg(test)] mod tests`.
Prints each strongly connected component with more than one module and exits 1 if any.
"""
import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand_use(body):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (whitespace removed)."""
    body = re.sub(r"\s+", "", body)
    out = []

    def rec(prefix, s):
        i = s.find("{")
        if i < 0:
            out.append(prefix + s)
            return
        head, inner = s[:i], s[i + 1 : s.rfind("}")]
        depth, start, parts = 0, 0, []
        for j, ch in enumerate(inner):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(inner[start:j])
                start = j + 1
        parts.append(inner[start:])
        for p in parts:
            if p:
                rec(prefix + head, p)

    rec("", body)
    return out


def paths_in(text):
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        found.extend(expand_use(m.group(1)))
    for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", text):
        found.append(m.group(0))
    return found


def resolve(mod, path, modules):
    segs = [s for s in path.split("::") if s]
    segs = [s.split(" as ")[0] for s in segs]
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = mod
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    else:
        return None
    best = None
    for k in range(len(rest) + 1):
        cand = base + tuple(rest[:k])
        if cand in modules:
            best = cand
    return best


def crate_cycles(root):
    files = []
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
    modules = {module_of(root, f): f for f in files}
    edges = {m: set() for m in modules}
    for mod, f in modules.items():
        text = strip_comments(strip_tests(open(f, encoding="utf-8").read()))
        for p in paths_in(text):
            t = resolve(mod, p, modules)
            if t is None or t == mod or mod[: len(t)] == t:
                continue  # self, or an ancestor
            edges[mod].add(t)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in modules:
        if v not in index:
            visit(v)
    return sccs, edges


def name(m):
    return "::".join(m) or "crate"


def main():
    bad = 0
    for root in sys.argv[1:]:
        sccs, edges = crate_cycles(root)
        for comp in sccs:
            bad += 1
            members = set(comp)
            print(f"{root}: cycle among {len(comp)} modules:")
            for m in sorted(comp):
                outs = sorted(name(t) for t in edges[m] if t in members)
                print(f"  {name(m)} -> {', '.join(outs)}")
        if not sccs:
            print(f"{root}: no module cycles")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
