#!/usr/bin/env python3
"""Write a multi-platform OCI image layout (image-spec v1.1) by hand.

Usage: make_oci_layout.py DIR [--tag v1] [--platforms linux/amd64,linux/arm64] [--layers 3]

Each platform gets its own config and LAYERS gzip'd tar layers holding random bytes, so every blob
is unique to this run. The top-level index.json of the layout points at one image index tagged TAG
(annotation org.opencontainers.image.ref.name), which lists one image manifest per platform.

Prints a JSON summary on stdout: the index descriptor, each manifest with its config and layers,
and the list of every blob digest written.  Standard library only.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def write_blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def make_layer(name, size):
    """A tar with one directory and one file of SIZE random bytes; returns (tar, tar_gz)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 0
        tar.addfile(d)
        f = tarfile.TarInfo("data/" + name)
        f.size = size
        f.mode = 0o644
        f.mtime = 0
        tar.addfile(f, io.BytesIO(os.urandom(size)))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(tar_bytes)
    return tar_bytes, gz.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--platforms", default="linux/amd64,linux/arm64")
    ap.add_argument("--layers", type=int, default=3)
    args = ap.parse_args()

    root = args.dir
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    blobs = []
    summary_manifests = []
    index_entries = []
    sizes = [3 * 1024 + 7, 256 * 1024, 1024 * 1024 + 333, 64 * 1024]
    for p_i, plat in enumerate(args.platforms.split(",")):
        os_name, arch = plat.split("/")[:2]
        layers, diff_ids = [], []
        for l_i in range(args.layers):
            size = sizes[(p_i + l_i) % len(sizes)]
            tar_bytes, gz_bytes = make_layer("%s-%s-%d.bin" % (os_name, arch, l_i), size)
            digest = write_blob(root, gz_bytes)
            blobs.append(digest)
            diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
            layers.append({"mediaType": MT_LAYER_GZIP, "digest": digest, "size": len(gz_bytes)})
        config = {
            "architecture": arch,
            "os": os_name,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/data"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "make_oci_layout.py layer %d" % i} for i in range(len(layers))],
        }
        if arch == "arm64":
            config["variant"] = "v8"
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_digest = write_blob(root, config_bytes)
        blobs.append(config_digest)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
            "annotations": {"org.opencontainers.image.title": "gati-interop-" + arch},
        }
        # Pretty-printed on purpose: a registry must store and serve manifest bytes verbatim.
        manifest_bytes = (json.dumps(manifest, indent=3) + "\n").encode()
        manifest_digest = write_blob(root, manifest_bytes)
        blobs.append(manifest_digest)
        platform = {"architecture": arch, "os": os_name}
        if arch == "arm64":
            platform["variant"] = "v8"
        index_entries.append({"mediaType": MT_MANIFEST, "digest": manifest_digest,
                              "size": len(manifest_bytes), "platform": platform})
        summary_manifests.append({"digest": manifest_digest, "size": len(manifest_bytes),
                                  "platform": plat, "config": config_digest,
                                  "layers": [l["digest"] for l in layers],
                                  "diff_ids": diff_ids})

    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index_entries,
             "annotations": {"org.opencontainers.image.ref.name": args.tag}}
    index_bytes = json.dumps(index, indent=2).encode()
    index_digest = write_blob(root, index_bytes)
    blobs.append(index_digest)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": MT_INDEX, "digest": index_digest, "size": len(index_bytes),
            "annotations": {"org.opencontainers.image.ref.name": args.tag}}]}, f)

    json.dump({"index": {"digest": index_digest, "size": len(index_bytes)},
               "manifests": summary_manifests, "blobs": blobs}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
