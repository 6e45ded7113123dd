#!/usr/bin/env python3
"""The declared MSRV (`rust-version` in Cargo.toml), checked as far as one
toolchain can. This machine has only the current Rust, so no build *with*
the MSRV compiler is possible here. What is checked instead:

1. What a user on the MSRV resolves: a probe crate outside the workspace
   that depends on every publishable crate (all features, none of our
   dev-dependencies) is resolved with Cargo's MSRV-aware fallback, and
   every package it resolves must declare a rust-version at or below ours
   (a package that declares none is counted, not failed).
2. That those versions build with our code: `cargo check` of the probe.
3. Our own code against the MSRV's standard library is clippy's
   `incompatible_msrv` lint (on by default, reading rust-version), which
   the clippy steps of .ci/run run with -D warnings.
"""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def metadata(manifest, *extra):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--manifest-path", str(manifest), *extra],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    ours = metadata(ROOT / "Cargo.toml", "--no-deps")
    msrvs = {p["rust_version"] for p in ours["packages"] if p["publish"] != []}
    if len(msrvs) != 1 or None in msrvs:
        sys.exit(f"msrv-check: the publishable crates declare {msrvs or 'no'} rust-version(s); want one")
    msrv = msrvs.pop()
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    probe = target / "msrv-probe"
    (probe / "src").mkdir(parents=True, exist_ok=True)
    (probe / "src" / "lib.rs").write_text("//! The MSRV probe: see scripts/msrv-check.py.\n")
    deps = []
    for p in ours["packages"]:
        if p["publish"] == []:
            continue
        features = sorted(f for f in p["features"] if f != "default")
        path = pathlib.Path(p["manifest_path"]).parent
        deps.append(f'{p["name"]} = {{ path = "{path}", features = {json.dumps(features)} }}')
    (probe / "Cargo.toml").write_text(
        "[package]\n"
        'name = "kcl-msrv-probe"\n'
        'version = "0.0.0"\n'
        'edition = "2024"\n'
        f'rust-version = "{msrv}"\n'
        "publish = false\n\n"
        "[workspace]\n\n"
        "[dependencies]\n" + "\n".join(deps) + "\n"
    )
    (probe / "Cargo.lock").unlink(missing_ok=True)
    env = dict(os.environ, CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS="fallback")
    subprocess.run(["cargo", "generate-lockfile", "--quiet"], cwd=probe, env=env, check=True)
    resolved = metadata(probe / "Cargo.toml", "--locked")["packages"]
    too_new, undeclared = [], 0
    for p in resolved:
        if p["source"] is None:
            continue  # ours: clippy's incompatible_msrv checks them
        rv = p.get("rust_version")
        if rv is None:
            undeclared += 1
        elif version(rv) > version(msrv):
            too_new.append(f'{p["name"]} {p["version"]} needs Rust {rv}')
    print(
        f"msrv-check: {len(resolved)} packages resolved for Rust {msrv}; "
        f"{undeclared} declare no rust-version"
    )
    if too_new:
        print(f"msrv-check: resolved dependencies that need a newer Rust than {msrv}:")
        for line in sorted(too_new):
            print(f"  {line}")
        sys.exit(1)
    subprocess.run(
        ["cargo", "check", "--locked", "--quiet", "--target-dir", str(probe / "target")],
        cwd=probe,
        check=True,
    )
    print(f"msrv-check: the probe builds with what a Rust {msrv} user resolves")


if __name__ == "__main__":
    main()
