#!/usr/bin/env python3
"""Push an OCI artifact with oras-py, pull it back, compare, then push a referrer to it.

Usage: oras_roundtrip.py --registry 127.0.0.1:PORT --workdir DIR [--repo demo/artifact] [--tag v1]
                         [--username U --password P]

With --username and --password, every request authenticates with them (oras-py's basic-auth
login, which goes through the registry's token flow).

Steps, each asserted here (exit code != 0 and a message on stderr on any mismatch):
 1. write two random files, push them as layers of an image manifest carrying
    artifactType=application/vnd.gati.test.artifact (one blob monolithic POST+PUT, one chunked
    POST+PATCH+PUT), with an empty config (application/vnd.oci.empty.v1+json), tagged TAG;
 2. pull REPO:TAG with OrasClient.pull into a fresh directory and compare the files byte for byte;
 3. fetch the manifest raw and check its digest header, artifactType and layers;
 4. push a referrer with OrasClient.push(subject=...) whose config mediaType is
    application/vnd.gati.test.oras-config and no artifactType (so the referrers API must report
    the config mediaType as its artifactType), tagged TAG-ref.

Prints one JSON line on stdout: the subject (artifact) manifest digest/size/mediaType, the
referrer manifest digest, and the file names.
"""
import argparse
import hashlib
import json
import os
import sys

import oras.client
import oras.defaults
import oras.oci

ARTIFACT_TYPE = "application/vnd.gati.test.artifact"
ORAS_REF_CONFIG_TYPE = "application/vnd.gati.test.oras-config"
EMPTY_JSON = b"{}"
EMPTY_MT = "application/vnd.oci.empty.v1+json"


def fail(msg):
    sys.stderr.write("oras_roundtrip: FAIL: %s\n" % msg)
    sys.exit(1)


def check(resp, what, codes=(200, 201, 202)):
    if resp.status_code not in codes:
        fail("%s: HTTP %s %s" % (what, resp.status_code, resp.text[:500]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repo", default="demo/artifact")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--username")
    ap.add_argument("--password")
    args = ap.parse_args()

    src = os.path.join(args.workdir, "src")
    dst = os.path.join(args.workdir, "pulled")
    os.makedirs(src, exist_ok=True)
    os.makedirs(dst, exist_ok=True)
    os.chdir(src)  # oras-py validates that pushed paths are under the working directory

    files = {"readme.txt": os.urandom(1000).hex().encode(), "model.bin": os.urandom(3 * 1024 * 1024 + 17)}
    for name, data in files.items():
        with open(name, "wb") as f:
            f.write(data)

    client = oras.client.OrasClient(hostname=args.registry, insecure=True)
    if args.username:
        client.auth.set_basic_auth(args.username, args.password)
    target = "%s/%s:%s" % (args.registry, args.repo, args.tag)
    container = client.get_container(target)

    # 1. push: layers, empty config, manifest with artifactType.
    manifest = oras.oci.NewManifest()
    manifest["artifactType"] = ARTIFACT_TYPE
    manifest["annotations"] = {"org.opencontainers.image.description": "gati interop test"}
    for i, name in enumerate(sorted(files)):
        layer = oras.oci.NewLayer(name, media_type="application/vnd.gati.test.file")
        layer["annotations"] = {oras.defaults.annotation_title: name}
        # model.bin goes chunked (POST, PATCH xN, PUT), readme.txt monolithic (POST, PUT).
        check(client.upload_blob(name, container, layer, do_chunked=(name == "model.bin"),
                                 chunk_size=1024 * 1024), "upload " + name)
        manifest["layers"].append(layer)
    with open("config.json", "wb") as f:
        f.write(EMPTY_JSON)
    conf = {"mediaType": EMPTY_MT, "digest": "sha256:" + hashlib.sha256(EMPTY_JSON).hexdigest(),
            "size": len(EMPTY_JSON)}
    check(client.upload_blob("config.json", container, conf), "upload config")
    manifest["config"] = conf
    resp = client.upload_manifest(manifest, container)
    check(resp, "put manifest", (201,))
    pushed_bytes = resp.request.body
    if isinstance(pushed_bytes, str):
        pushed_bytes = pushed_bytes.encode()
    subject_digest = "sha256:" + hashlib.sha256(pushed_bytes).hexdigest()
    header = resp.headers.get("Docker-Content-Digest")
    if header != subject_digest:
        fail("Docker-Content-Digest on manifest PUT is %r, expected %r" % (header, subject_digest))

    # 2. pull with the high-level client and compare bytes.
    pulled = client.pull(target=target, outdir=dst)
    got = sorted(os.path.basename(p) for p in pulled)
    if got != sorted(files):
        fail("pulled files %r, expected %r" % (got, sorted(files)))
    for name, data in files.items():
        with open(os.path.join(dst, name), "rb") as f:
            if f.read() != data:
                fail("pulled %s differs from the pushed bytes" % name)

    # 3. raw manifest by tag and by digest: verbatim bytes, artifactType kept.
    for ref in (args.tag, subject_digest):
        r = client.do_request("http://%s/v2/%s/manifests/%s" % (args.registry, args.repo, ref), "GET",
                              headers={"Accept": oras.defaults.default_manifest_media_type})
        check(r, "get manifest " + ref, (200,))
        if r.content != pushed_bytes:
            fail("manifest %s is not served verbatim" % ref)
        if r.headers.get("Docker-Content-Digest") != subject_digest:
            fail("GET manifest %s: Docker-Content-Digest %r" % (ref, r.headers.get("Docker-Content-Digest")))
        if not r.headers.get("Content-Type", "").startswith(oras.defaults.default_manifest_media_type):
            fail("GET manifest %s: Content-Type %r" % (ref, r.headers.get("Content-Type")))
    if json.loads(pushed_bytes)["artifactType"] != ARTIFACT_TYPE:
        fail("artifactType lost")
    tags = client.get_tags(target)
    if args.tag not in tags:
        fail("tag list %r lacks %r" % (tags, args.tag))

    # 4. a referrer pushed by oras-py's own push(subject=...).
    with open("sig.txt", "wb") as f:
        f.write(b"signature " + os.urandom(16).hex().encode())
    with open("refconfig.json", "wb") as f:
        f.write(b'{"kind":"gati-test"}')
    subject = oras.oci.Subject(mediaType=oras.defaults.default_manifest_media_type,
                               digest=subject_digest, size=len(pushed_bytes))
    ref_target = "%s/%s:%s-ref" % (args.registry, args.repo, args.tag)
    resp = client.push(target=ref_target, files=["sig.txt"], subject=subject,
                       manifest_config="refconfig.json:" + ORAS_REF_CONFIG_TYPE,
                       manifest_annotations={"org.example.signed-by": "gati-test"}, quiet=True)
    check(resp, "push referrer", (201,))
    ref_bytes = resp.request.body
    if isinstance(ref_bytes, str):
        ref_bytes = ref_bytes.encode()
    ref_digest = "sha256:" + hashlib.sha256(ref_bytes).hexdigest()
    if resp.headers.get("Docker-Content-Digest") != ref_digest:
        fail("referrer PUT digest header %r, expected %r" % (resp.headers.get("Docker-Content-Digest"), ref_digest))

    json.dump({"subject": {"digest": subject_digest, "size": len(pushed_bytes),
                           "mediaType": oras.defaults.default_manifest_media_type},
               "referrer": {"digest": ref_digest, "size": len(ref_bytes),
                            "artifactType": ORAS_REF_CONFIG_TYPE,
                            "oci_subject_header": resp.headers.get("OCI-Subject")},
               "files": sorted(files)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
