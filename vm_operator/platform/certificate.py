"""``vm-operator tls init --dir DIR [--name HOST]… [--force]``: a self-signed certificate for
the operator's HTTPS (``--tls-cert DIR/cert.pem --tls-key DIR/key.pem``), made by the
``openssl`` command, and ``vm-operator tls fingerprint FILE``.

The certificate names ``localhost``, ``127.0.0.1``, ``::1``, this host's name and every
``--name``, and carries what strict verifiers require (Python 3.13's default context sets
``VERIFY_X509_STRICT``; browsers and curl ask the same): subject alternative names, subject
and authority key identifiers, critical basic constraints (not a CA), key usage and the
``serverAuth`` extended key usage, a random serial number. Only options that both OpenSSL
(Debian) and LibreSSL (macOS) accept are used: the extensions are a config file in a private
temporary folder, not ``-addext``. The key is a P-256 EC key, readable by its owner only;
both files are made in that private folder, then renamed into place, whole.

Clients trust it by its SHA-256 fingerprint (``--fingerprint sha256:HEX``, printed here) or
by the file itself (``--ca-file DIR/cert.pem``).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from vm_operator.pem import first_certificate

OPENSSL_TIMEOUT = 60.0
DEFAULT_DAYS = 825  # the longest validity Apple's platforms accept for a TLS server certificate
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
BUILT_IN_NAMES = ("localhost", "127.0.0.1", "::1")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")


class CertificateError(Exception):
    """What stops ``tls init``: one line for stderr."""


def subject_alternative_name(name: str) -> str | None:
    """``IP:…`` or ``DNS:…`` for a host name or address, None when it is neither."""
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        pass
    if len(name) <= 253 and _DNS_NAME.fullmatch(name):
        return f"DNS:{name.rstrip('.').lower()}"
    return None


def certificate_names(given: Sequence[str], host_name: str) -> list[str]:
    """The subject alternative names: the built-in ones, this host's name when it is a valid
    DNS name, and each given name (a bad one is a ``CertificateError``), without repeats."""
    found: list[str] = []
    for name in given:
        if subject_alternative_name(name) is None:
            raise CertificateError(f"--name {name!r} is neither a DNS name nor an IP address")
    for name in (*BUILT_IN_NAMES, host_name, *given):
        entry = subject_alternative_name(name)
        if entry is not None and entry not in found:
            found.append(entry)
    return found


def openssl_config(names: Sequence[str]) -> str:
    """The ``openssl req`` configuration of a self-signed server certificate."""
    return ("[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = server\n"
            "[dn]\nCN = vm-operator\nO = vm-operator\n"
            "[server]\n"
            f"subjectAltName = {', '.join(names)}\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n")


def fingerprint(pem: str) -> str:
    """``sha256:HEX`` of the first certificate of a PEM text (what clients pin)."""
    return "sha256:" + hashlib.sha256(first_certificate(pem)).hexdigest()


def _openssl(binary: str, args: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=OPENSSL_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        raise CertificateError(f"openssl {args[0]} took longer than {OPENSSL_TIMEOUT:g} s"
                               ) from None
    except OSError as exc:
        raise CertificateError(f"cannot run {binary}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CertificateError(f"openssl {args[0]} failed: {last}")


def make(folder: Path, names: Sequence[str], days: int = DEFAULT_DAYS,
         force: bool = False, binary: str = "openssl") -> tuple[Path, Path, str]:
    """Write ``folder/cert.pem`` and ``folder/key.pem``; their paths and the fingerprint."""
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    existing = [str(path) for path in (cert, key) if path.exists() or path.is_symlink()]
    if existing and not force:
        raise CertificateError(f"{' and '.join(existing)} exist{'s' if len(existing) == 1 else ''}"
                               "; --force replaces them")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tls-init-", dir=folder))  # mode 0700
    except OSError as exc:
        raise CertificateError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        (work / "openssl.cnf").write_text(openssl_config(names))
        _openssl(binary, ["ecparam", "-genkey", "-name", "prime256v1", "-noout",
                          "-out", KEY_FILE], work)
        _openssl(binary, ["req", "-new", "-x509", "-config", "openssl.cnf", "-key", KEY_FILE,
                          "-out", CERT_FILE, "-days", str(days), "-sha256",
                          "-set_serial", str(secrets.randbits(126) | 1 << 126)], work)
        os.chmod(work / KEY_FILE, 0o600)
        os.chmod(work / CERT_FILE, 0o644)
        printed = fingerprint((work / CERT_FILE).read_text())
        for name in (KEY_FILE, CERT_FILE):
            with open(work / name, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(work / name, folder / name)
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot write the certificate in {folder}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cert, key, printed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm-operator tls", allow_abbrev=False,
        description="Certificates for the operator's HTTPS (--tls-cert, --tls-key).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", allow_abbrev=False,
        help="write DIR/cert.pem and DIR/key.pem, a self-signed certificate, and print its "
        "fingerprint",
        description="Write DIR/cert.pem and DIR/key.pem (readable by its owner only): a "
        f"self-signed certificate for {', '.join(BUILT_IN_NAMES)}, this host's name and each "
        "--name, made by the openssl command. Prints its SHA-256 fingerprint, which clients "
        "pin with --fingerprint.")
    init.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    init.add_argument("--name", action="append", default=[], metavar="HOST",
                      help="one more DNS name or IP address clients reach the operator by "
                      "(repeat it)")
    init.add_argument("--force", action="store_true", help="replace existing files")
    init.add_argument("--days", type=int, default=DEFAULT_DAYS, choices=range(1, 3651),
                      metavar="DAYS", help=f"validity (default {DEFAULT_DAYS})")
    show = actions.add_parser("fingerprint", allow_abbrev=False,
                              help="print the SHA-256 fingerprint of a PEM certificate")
    show.add_argument("file", metavar="FILE", help="the certificate, e.g. DIR/cert.pem")
    return parser


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    args = build_parser().parse_args(list(argv))
    try:
        if args.action == "fingerprint":
            try:
                text = Path(args.file).read_text(errors="replace")
                stdout.write(fingerprint(text) + "\n")
            except OSError as exc:
                raise CertificateError(f"cannot read {args.file}: {exc.strerror}") from None
            except ValueError:
                raise CertificateError(f"{args.file} holds no PEM certificate") from None
            return 0
        if shutil.which("openssl") is None:
            raise CertificateError("the openssl command is not on PATH (macOS ships it; on "
                                   "Debian: apt-get install openssl)")
        names = certificate_names(args.name, socket.gethostname())
        cert, key, printed = make(Path(args.dir), names, args.days, args.force)
    except CertificateError as exc:
        stderr.write(f"vm-operator tls: {exc}\n")
        return 1
    listed = ", ".join(name.split(":", 1)[1] for name in names)
    stdout.write(f"wrote {cert} (for {listed}; {args.days} days) and {key} (its key, mode 0600)\n"
                 f"serve:   vm-operator --tls-cert {cert} --tls-key {key}\n"
                 f"clients: --fingerprint {printed}  (or --ca-file {cert})\n"
                 f"fingerprint: {printed}\n")
    return 0
