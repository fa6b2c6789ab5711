"""Helpers for the encrypted-file tests (XEP-0454 over XEP-0363): a Prosody with
mod_http_file_share on HTTPS loopback, mend devices that trust its test certificate, an
independent XEP-0454 decryptor, and a small HTTPS file server for what Prosody never does.
"""

import hashlib
import http.server
import os
import ssl
import threading
import urllib.request

from harness import Prosody, free_port, run
from mendcli import Mend

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # Debian: python3-cryptography
    AESGCM = None

MIB = 1024 * 1024


class TlsMend(Mend):
    """A mend device on the TLS Prosody: --tls trust-any (the test certificate is self-signed),
    which also lets the HTTPS transfers accept it."""

    def argv(self, *cmd):
        a = super().argv(*cmd)
        a[a.index("--tls") + 1] = "trust-any"
        return a


def upload_server(limit=10 * MIB, https_cert=None, external_port=None, on_host=False, **kw):
    """Prosody with mod_http_file_share (component upload.localhost) on an HTTPS port of
    loopback, its slot URLs on https://localhost:PORT/. With STARTTLS and the harness's
    certificate, or, given https_cert=(cert, key), plain c2s and that certificate for HTTPS
    (for clients that cannot be told to accept a self-signed XMPP certificate).
    external_port: the slots' URLs name this port of localhost instead (an HttpsFiles
    server that stalls uploads, say). kw: more of Prosody's arguments (muc=True)."""
    port = free_port()
    lua = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    ssl_line = (f"https_ssl = {{ certificate = {lua(https_cert[0])}; "
                f"key = {lua(https_cert[1])} }}\n" if https_cert else "")
    component = "" if on_host else 'Component "upload.localhost" "http_file_share"\n'
    extra = (f'https_ports = {{ {port} }}\nhttps_interfaces = {{ "127.0.0.1" }}\n{ssl_line}'
             f'{component}'
             f'  http_file_share_size_limit = {limit}\n'
             f'  http_host = "localhost"\n'
             f'  http_external_url = "https://localhost:{external_port or port}/"\n')
    if on_host:  # XEP-0363 §3: the service is the server's domain itself, no item of it
        kw["extra_modules"] = list(kw.get("extra_modules", ())) + ["http_file_share"]
    return Prosody(accounts={"alice": "pw", "bob": "pw", "carol": "pw"}, tls=not https_cert,
                   extra_config=extra, **kw)


def store_files(srv):
    """What mod_http_file_share keeps on the server's disk: {path: bytes}."""
    top = os.path.join(srv.dir, "data", "upload%2elocalhost", "http_file_share")
    out = {}
    if os.path.isdir(top):
        for name in os.listdir(top):
            with open(os.path.join(top, name), "rb") as f:
                out[name] = f.read()
    return out


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def parse_link(link):
    """XEP-0454 §3, independently: -> (https URL, iv, key)."""
    assert link.startswith("aesgcm://"), link
    url, frag = link[len("aesgcm://"):].split("#")
    assert len(frag) in (88, 96), frag
    return "https://" + url, bytes.fromhex(frag[:-64]), bytes.fromhex(frag[-64:])


def independent_decrypt(link):
    url, iv, key = parse_link(link)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    with urllib.request.urlopen(url, context=ctx, timeout=30) as r:
        data = r.read()
    return AESGCM(key).decrypt(iv, data, None)


def make_link(port, path, iv, key):
    return f"aesgcm://127.0.0.1:{port}{path}#{iv.hex()}{key.hex()}"


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert], timeout=60, check=True)
    return cert, key


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.requests.append(("GET", self.path))
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if isinstance(body, tuple):  # ("stall-after", data, n): n bytes of data, then nothing
            self.send_response(200)
            self.send_header("Content-Length", str(len(body[1])))
            self.end_headers()
            self.wfile.write(body[1][:body[2]])
            self.wfile.flush()
            self.server.done.wait(120)
            return
        if body == "stall":  # headers and a few bytes, then nothing until the test ends
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.server.done.wait(120)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):  # noqa: N802 - an upload: taken in, never read, until the test ends
        self.server.requests.append(("PUT", self.path))
        self.server.done.wait(120)

    def do_HEAD(self):  # noqa: N802 - what a file's size is asked with
        self.server.requests.append(("HEAD", self.path))
        body = self.server.routes.get(self.path)
        if not isinstance(body, bytes):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def log_message(self, *args):
        pass


class HttpsFiles:
    """A small HTTPS file server on loopback: routes {path: bytes, "stall" or ("stall-after",
    bytes, n)}, uploads (PUT) stalled; requests
    lists what was asked, in order."""

    def __init__(self, cert, key):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.routes = {}
        self.httpd.requests = []  # (method, path) as they came
        self.httpd.done = threading.Event()
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.routes = self.httpd.routes
        self.requests = self.httpd.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path, plain, iv_len=12, key=None):
        """Serves `plain` encrypted at `path`; returns its link."""
        iv, key = os.urandom(iv_len), key or os.urandom(32)
        self.routes[path] = AESGCM(key).encrypt(iv, plain, None)
        return make_link(self.port, path, iv, key)

    def close(self):
        self.httpd.done.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
