#!/usr/bin/env python3
"""Writes SNS notifications signed like AWS (SignatureVersion 2) for benchmarking POST /sns.

Usage: sns_messages.py OUT_DIR COUNT TOPIC_ARN
Creates OUT_DIR/certs/SimpleNotificationService-<hex>.pem (a self-signed sns.amazonaws.com certificate, to pin
with sns.cert_dir) and OUT_DIR/messages.txt: COUNT CloudWatch `OK` alarm notifications, one JSON body per line,
each with its own MessageId. OK alarms are verified, claimed and audited but call no AWS API, so the benchmark
measures reflex itself.
"""
import base64
import datetime
import json
import multiprocessing
import os
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_NAME = "SimpleNotificationService-b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0.pem"


def make_key_and_cert(cert_dir):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    os.makedirs(cert_dir, exist_ok=True)
    with open(os.path.join(cert_dir, CERT_NAME), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def sign_batch(args):
    key_pem, topic, count, seed = args
    key = serialization.load_pem_private_key(key_pem, password=None)
    region = topic.split(":")[3]
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    alarm = json.dumps({
        "AlarmName": "bench-web-unhealthy", "NewStateValue": "OK", "OldStateValue": "ALARM",
        "Trigger": {"Dimensions": [{"name": "LoadBalancerName", "value": "web-elb"}]},
    })
    lines = []
    for n in range(count):
        fields = {
            "Type": "Notification",
            "MessageId": str(uuid.UUID(int=(seed << 64) + n)),
            "TopicArn": topic,
            "Message": alarm,
            "Timestamp": timestamp,
            "SignatureVersion": "2",
            "SigningCertURL": f"https://sns.{region}.amazonaws.com/{CERT_NAME}",
        }
        text = "".join(f"{k}\n{fields[k]}\n" for k in ["Message", "MessageId", "Timestamp", "TopicArn", "Type"])
        fields["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        lines.append(json.dumps(fields))
    return lines


def main():
    out, count, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    key_pem = make_key_and_cert(os.path.join(out, "certs"))
    workers = os.cpu_count() or 1
    chunks = [(key_pem, topic, count // workers + (1 if i < count % workers else 0), i + 1) for i in range(workers)]
    with multiprocessing.Pool(workers) as pool, open(os.path.join(out, "messages.txt"), "w") as f:
        for lines in pool.map(sign_batch, chunks):
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
