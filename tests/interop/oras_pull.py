#!/usr/bin/env python3
"""Pull a Gati artifact with oras-py, as any OCI client would, and report what it wrote.

Usage: oras_pull.py --registry 127.0.0.1:PORT --target REPO:TAG --outdir DIR

Prints one JSON line: the files written under DIR (relative paths) with their sha256, the
manifest's artifactType and config mediaType, and the config blob (the Gati document) as text.
"""
import argparse
import hashlib
import json
import os
import sys

import oras.client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--registry", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--outdir", required=True)
    a = p.parse_args()
    client = oras.client.OrasClient(hostname=a.registry, insecure=True)
    target = "%s/%s" % (a.registry, a.target)
    client.pull(target=target, outdir=a.outdir)
    manifest = client.get_manifest(target)
    config = manifest["config"]
    repo = a.target.split(":")[0]
    blob = client.get_blob(container="%s/%s" % (a.registry, repo), digest=config["digest"])
    files = {}
    for root, _dirs, names in os.walk(a.outdir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, a.outdir)] = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps({
        "files": files,
        "artifactType": manifest.get("artifactType"),
        "configMediaType": config["mediaType"],
        "document": blob.content.decode("utf-8"),
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure as the script's own
        sys.stderr.write("oras_pull: FAIL: %r\n" % (e,))
        sys.exit(1)
