"""`make lab` works: JupyterLab serves the chapters and starts a `python3` kernel that imports the package.

One headless JupyterLab server is started the way `make lab` starts it (repository root as root
directory), on loopback, on a free port, with a random token, and with its own config, data and
runtime folders so nothing from the user's home changes what is tested. The test talks to it
only through the REST and websocket APIs that the JupyterLab front end uses, and always shuts it
down. Every wait is bounded.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import notebook_cells, parameters_cell

from s12ls_utils.book import book_pages

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).with_name("jupyter")
START_TIMEOUT_S = 120.0
KERNEL_TIMEOUT_S = 90.0
pytestmark = pytest.mark.slow


def _toc_chapters() -> list[str]:
    """Stems of the notebooks named in `_toc.yml` (the chapters a reader opens in JupyterLab)."""
    return [f for f in book_pages(ROOT) if (ROOT / f"{f}.ipynb").exists()]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server and a small authenticated HTTP client for it."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str, log: Path):
        self.proc, self.port, self.token, self.log = proc, port, token, log
        self.base = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        """``(status, parsed JSON or text)`` of one request; HTTP errors are returned, not raised."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
        text = raw.decode("utf-8", "replace")
        return status, (json.loads(text) if "json" in ctype and text else text)

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    assert JUPYTER.exists(), f"{JUPYTER} is missing: the book extras are not installed (make setup)"
    tmp = tmp_path_factory.mktemp("lab")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),  # no user kernel specs: the venv's python3 must serve
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"),
    }
    env.pop("JUPYTER_TOKEN", None)
    port, token = _free_port(), secrets.token_hex(24)
    log = tmp / "server.log"
    cmd = [
        str(JUPYTER),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
    ]
    if os.geteuid() == 0:  # CI containers run as root; the server refuses that unless told
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Lab(proc, port, token, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if server.request("GET", "/api/status")[0] == 200:
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab did not answer within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}"
                )
            time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            try:
                server.request("POST", "/api/shutdown")
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def test_token_is_required(lab: Lab):
    status, _ = lab.request("GET", "/api/contents", auth=False)
    assert status == 403, f"the server answered an unauthenticated request with {status}"


def test_lab_page_answers(lab: Lab):
    status, page = lab.request("GET", "/lab")
    assert status == 200
    assert "jupyter" in page.lower()


def test_python3_is_the_default_kernel(lab: Lab):
    status, specs = lab.request("GET", "/api/kernelspecs")
    assert status == 200
    assert specs["default"] == "python3"
    assert "python3" in specs["kernelspecs"]


@pytest.mark.parametrize("stem", _toc_chapters())
def test_chapter_is_served_as_notebook(lab: Lab, stem: str):
    status, model = lab.request("GET", f"/api/contents/{stem}.ipynb")
    assert status == 200, f"{stem}.ipynb: HTTP {status}"
    assert model["type"] == "notebook"
    on_disk = json.loads((ROOT / f"{stem}.ipynb").read_text())
    assert len(model["content"]["cells"]) == len(on_disk["cells"])


def _channels(lab: Lab, kernel_id: str):
    """The kernel's websocket channel, as the front end opens it (which also makes the server ask the
    kernel for its info: until then the REST API reports it as ``starting``)."""
    import websocket  # websocket-client, a dependency of jupyter_server

    return websocket.create_connection(
        f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
        header=[f"Authorization: token {lab.token}"],
        timeout=KERNEL_TIMEOUT_S,
    )


def _execute(ws, code: str, expressions: dict[str, str]) -> dict[str, str]:
    """Run ``code`` in the kernel behind ``ws`` and return the values of ``expressions`` afterwards."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": expressions,
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    deadline = time.monotonic() + KERNEL_TIMEOUT_S
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["msg_type"] != "execute_reply":
            continue
        content = msg["content"]
        assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
        out = {}
        for name, res in content["user_expressions"].items():
            assert res["status"] == "ok", f"{name}: {res.get('ename')}: {res.get('evalue')}"
            out[name] = ast.literal_eval(res["data"]["text/plain"])
        return out
    pytest.fail(f"no execute_reply within {KERNEL_TIMEOUT_S:.0f} s")


def test_python3_kernel_starts_and_imports_the_package(lab: Lab):
    status, kernel = lab.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    kid = kernel["id"]
    try:
        status, model = lab.request("GET", f"/api/kernels/{kid}")
        assert status == 200 and model["name"] == "python3"
        ws = _channels(lab, kid)
        try:
            deadline = time.monotonic() + KERNEL_TIMEOUT_S
            while model["execution_state"] != "idle":
                assert model["execution_state"] != "dead", f"the kernel died:\n{lab.log_tail()}"
                assert time.monotonic() < deadline, (
                    f"kernel still {model['execution_state']!r}:\n{lab.log_tail()}"
                )
                time.sleep(0.5)
                model = lab.request("GET", f"/api/kernels/{kid}")[1]
            got = _execute(
                ws,
                "import sys\nimport s12ls_utils",
                {"package": "s12ls_utils.__file__", "prefix": "sys.prefix"},
            )
        finally:
            ws.close()
        # the kernel runs the project's environment and imports the package from this checkout
        assert Path(got["prefix"]).resolve() == Path(sys.prefix).resolve()
        assert Path(got["package"]).resolve().is_relative_to(ROOT / "s12ls_utils")
    finally:
        assert lab.request("DELETE", f"/api/kernels/{kid}")[0] == 204
    assert lab.request("GET", f"/api/kernels/{kid}")[0] == 404


def _wait_idle(lab: Lab, kid: str) -> None:
    deadline = time.monotonic() + KERNEL_TIMEOUT_S
    while True:
        model = lab.request("GET", f"/api/kernels/{kid}")[1]
        if model["execution_state"] == "idle":
            return
        assert model["execution_state"] != "dead", f"the kernel died:\n{lab.log_tail()}"
        assert time.monotonic() < deadline, f"kernel still {model['execution_state']!r}:\n{lab.log_tail()}"
        time.sleep(0.5)


@pytest.mark.parametrize("stem", [c for c in _toc_chapters() if Path(c).name[:2] in ("01", "05")])
def test_chapter_opened_in_lab_finds_its_data(lab: Lab, stem: str):
    """A chapter opened in JupyterLab gets a kernel in ``book/`` (as on Binder), yet its default paths
    must resolve as under papermill: the chapter's own Imports and Parameters cells are run there and
    the default ``data_dir`` must then be the repository's ``data/sample``."""
    cells = notebook_cells(ROOT / f"{stem}.ipynb")
    params = parameters_cell(ROOT / f"{stem}.ipynb")
    imports = next(c for c in cells if c["cell_type"] == "code")  # imports and book.setup() (test_notebooks)
    status, session = lab.request(
        "POST",
        "/api/sessions",
        {"path": f"{stem}.ipynb", "name": Path(stem).name, "type": "notebook", "kernel": {"name": "python3"}},
    )
    assert status == 201, session
    kid = session["kernel"]["id"]
    try:
        ws = _channels(lab, kid)
        try:
            _wait_idle(lab, kid)
            start = _execute(ws, "import os", {"cwd": "os.getcwd()"})
            got = _execute(
                ws,
                "".join(imports["source"]) + "\n" + "".join(params["source"]),
                {"cwd": "os.getcwd()", "data_dir": "str(data_dir)", "found": "os.path.isdir(data_dir)"},
            )
        finally:
            ws.close()
        assert Path(start["cwd"]).resolve() == (ROOT / stem).parent  # the kernel started in book/
        assert Path(got["cwd"]).resolve() == ROOT
        assert got["found"], f"{got['data_dir']} not found from {got['cwd']}"
    finally:
        assert lab.request("DELETE", f"/api/sessions/{session['id']}")[0] == 204
