#!/usr/bin/env python3
"""Lists the pairs of modules (files) in the workspace's crates that import each other.

`make lint` runs it: doors between modules run one way. A module is a file under a crate's src/
(bin/ targets and tests/ are roots of their own and are skipped). A file imports another when it
names a path into it: `use crate::a::b`, `super::x`, `self::child`, a declared child module
`child::f()`, or a name the crate root re-exports (`crate::Name` -> the module it comes from).
An indented `super::` sits in an inline module (tests) and means the file itself.
Exit status 1 when any pair is found.
"""
import pathlib
import re
import sys


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = tree.strip()
    group = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not group:
        return [tree]
    prefix, inner = group.group(1), group.group(2)
    items, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += (ch == "{") - (ch == "}")
        current += ch
    items.append(current)
    return [prefix + path for item in items if item.strip() for path in expand_use(item)]


def segments(path):
    return [s for s in re.sub(r"\s+", "", path).split("::") if s]


def module_of(src, file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[0] == "bin":
        return None
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def root_reexports(root_text):
    """Names the crate root re-exports, mapped to the module path they come from."""
    names = {}
    for use in re.finditer(r"^pub\s+use\s+([^;]+);", root_text, re.M):
        for path in expand_use(use.group(1)):
            alias = re.match(r"(.*?)\s+as\s+(\w+)\s*$", path, re.S)
            segs = segments(alias.group(1) if alias else path)
            if segs and segs[0] in ("self", "crate"):
                segs = segs[1:]
            if len(segs) >= 2:
                names[alias.group(2) if alias else segs[-1]] = tuple(segs[:-1])
    return names


def referenced_paths(text):
    """(path, indented) for every module path the file names."""
    paths = []
    for use in re.finditer(r"\buse\s+([^;]+);", text):
        indented = use.start() > text.rfind("\n", 0, use.start()) + 1
        paths += [(path, indented) for path in expand_use(use.group(1))]
    for ref in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
        paths.append((ref.group(1), ref.start() > text.rfind("\n", 0, ref.start()) + 1))
    children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M))
    for ref in re.finditer(r"(?<![\w:])(\w+)((?:::\w+)*)::", text):
        if ref.group(1) in children:
            paths.append(("self::" + ref.group(1) + ref.group(2), False))
    return paths


def crate_edges(src):
    files = {}
    for file in src.rglob("*.rs"):
        module = module_of(src, file)
        if module is not None:
            files[module] = file
    reexports = root_reexports(strip_comments(files[()].read_text())) if () in files else {}

    def resolve(path):
        path = tuple(path)
        while path and path not in files:
            path = path[:-1]
        return path

    edges = {}
    for module, file in files.items():
        for path, indented in referenced_paths(strip_comments(file.read_text())):
            segs = segments(path)
            head, rest = segs[0], segs[1:]
            if head == "crate":
                target = rest
                if target and (target[0],) not in files and target[0] in reexports:
                    target = list(reexports[target[0]]) + target[1:]
            elif head == "super":
                base = list(module) if indented else list(module[:-1])
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
                target = base + rest
            elif head == "self":
                target = list(module) + rest
            else:
                continue
            resolved = resolve(target)
            if resolved != module:
                edges.setdefault(module, set()).add(resolved)
    return files, edges


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    pairs = []
    for manifest in sorted(root.glob("**/Cargo.toml")):
        src = manifest.parent / "src"
        if "target" in manifest.relative_to(root).parts or not src.is_dir():
            continue
        files, edges = crate_edges(src)
        for a, targets in edges.items():
            for b in targets:
                if a < b and a in edges.get(b, ()):
                    pairs.append((files[a].relative_to(root), files[b].relative_to(root)))
    for a, b in sorted(pairs):
        print(f"modules import each other: {a} <-> {b}")
    return 1 if pairs else 0


if __name__ == "__main__":
    sys.exit(main())
