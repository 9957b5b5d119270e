"""zapvoice installs as one package: agent/ and providers/ of the repository are zapvoice.agent and
zapvoice.providers, so neither a PyPI project named `agent` or `providers` nor a folder of that
name where the user runs zapvoice can replace them."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_only_zapvoice_with_its_catalog(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("zapvoice-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"zapvoice"}
    assert "zapvoice/models.txt" in names
    static = ROOT / "agent" / "browser" / "static"
    pages = {f"zapvoice/agent/browser/static/{path.name}" for path in static.iterdir()}
    assert {"zapvoice/agent/browser/static/shell.html", "zapvoice/agent/browser/static/worklet.js"} <= pages
    assert pages <= set(names), pages - set(names)  # the playground's pages, served from the installed package
    packages = {str(path.parent.relative_to(ROOT)) for path in ROOT.glob("*/**/__init__.py")
                if path.parts[len(ROOT.parts)] in {"agent", "providers", "zapvoice"}}
    for package in packages:  # every folder of the three is in the wheel, under zapvoice/
        inside = package if package.startswith("zapvoice") else f"zapvoice/{package}"
        assert f"{inside}/__init__.py" in names, package


def test_a_folder_named_agent_where_zapvoice_runs_changes_nothing(tmp_path):
    for name in ("agent", "providers"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise SystemExit('the stray {name}/ was imported')\n")
    probe = ("import zapvoice.agent.zuckzapgo.server, zapvoice.agent.gateway.server, zapvoice.providers.service;"
             "from zapvoice.providers.model_store import load_catalog; print(len(load_catalog()))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
