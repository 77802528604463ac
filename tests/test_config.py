"""pcloud.config.load_settings, the documented options, and `pcloud serve` with no configuration."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from pcloud.config import OPTIONS, load_settings
from pcloud.errors import ConfigError

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
OPTION_NAMES = {option.env for option in OPTIONS}


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty folder to start pcloud in."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(workdir: Path, environ: dict | None = None, dotenv: str | None = None):
    env_file = workdir / ".env"
    if dotenv is not None:
        env_file.write_text(dotenv)
    return load_settings(environ=environ or {}, env_file=env_file)


# --- Zero configuration -----------------------------------------------------------------


def test_zero_configuration_keeps_everything_in_pcloud_data_under_the_current_folder(workdir):
    settings = load(workdir)
    data_dir = workdir.resolve() / "pcloud-data"
    assert settings.data_dir == data_dir
    assert settings.database_url == f"sqlite:///{data_dir / 'pcloud.db'}"
    assert settings.upload_folder == data_dir / "files"
    assert settings.google_enabled is False


def test_zero_configuration_generates_a_secret_key_kept_with_mode_0600(workdir):
    settings = load(workdir)
    key_file = settings.data_dir / "secret_key"
    assert key_file.read_text().strip() == settings.secret_key
    assert len(settings.secret_key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "generated" in settings.sources["secret_key"]


def test_the_generated_secret_key_survives_a_restart(workdir):
    first = load(workdir)
    second = load(workdir)
    assert second.secret_key == first.secret_key
    assert "kept in" in second.sources["secret_key"]


def test_a_configured_secret_key_is_not_written_to_disk(workdir):
    settings = load(workdir, {"SECRET_KEY": "from-the-environment-and-long-enough"})
    assert settings.secret_key == "from-the-environment-and-long-enough"
    assert not (settings.data_dir / "secret_key").exists()


def test_an_empty_kept_secret_key_file_is_an_error_saying_what_to_do(workdir):
    (workdir / "pcloud-data").mkdir()
    (workdir / "pcloud-data" / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="secret_key is empty"):
        load(workdir)


def test_a_relative_data_dir_is_taken_from_the_current_folder(workdir):
    settings = load(workdir, {"PCLOUD_DATA_DIR": "state/pcloud", "SECRET_KEY": "k" * 40})
    assert settings.data_dir == workdir.resolve() / "state" / "pcloud"
    assert settings.upload_folder == settings.data_dir / "files"


# --- Where values come from -------------------------------------------------------------


def test_the_environment_beats_dotenv_which_beats_the_defaults(workdir):
    settings = load(
        workdir,
        environ={"MAX_UPLOAD_SIZE": "2MiB"},
        dotenv="MAX_UPLOAD_SIZE=1MiB\nACCESS_TOKEN_LIFETIME=2h\n",
    )
    assert settings.max_upload_size == 2 * 1024**2
    assert settings.access_token_lifetime == 7200
    assert settings.refresh_token_lifetime == 30 * 86400
    assert settings.sources["max_upload_size"] == "the environment"
    assert settings.sources["access_token_lifetime"].startswith(".env")
    assert settings.sources["refresh_token_lifetime"] == "default"


def test_overrides_beat_the_environment(workdir):
    settings = load_settings(
        environ={"PCLOUD_PORT": "6000"}, env_file=workdir / ".env", overrides={"port": 7000}
    )
    assert settings.port == 7000


def test_a_missing_dotenv_file_is_fine(workdir):
    settings = load_settings(environ={}, env_file=workdir / "no-such" / ".env")
    assert settings.port == 5000


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10GiB", 10 * 1024**3),
        ("500M", 500 * 1024**2),
        ("1048576", 1048576),
        ("64KiB", 64 * 1024),
        ("2 TiB", 2 * 1024**4),
        ("1g", 1024**3),
    ],
)
def test_sizes_parse(workdir, text, size):
    assert load(workdir, {"MAX_UPLOAD_SIZE": text}).max_upload_size == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("30d", 30 * 86400), ("90", 90), ("15m", 900), ("45s", 45)]
)
def test_durations_parse(workdir, text, seconds):
    assert load(workdir, {"ACCESS_TOKEN_LIFETIME": text}).access_token_lifetime == seconds


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_UPLOAD_SIZE", "lots"),
        ("MAX_UPLOAD_SIZE", "10 parsecs"),
        ("ACCESS_TOKEN_LIFETIME", "a while"),
        ("REFRESH_TOKEN_LIFETIME", "-1d"),
        ("PCLOUD_PORT", "70000"),
        ("PCLOUD_PORT", "http"),
        ("PCLOUD_THREADS", "0"),
        ("PCLOUD_WORKERS", "many"),
    ],
)
def test_a_bad_value_in_the_environment_names_the_option_and_the_environment(workdir, name, value):
    with pytest.raises(ConfigError) as raised:
        load(workdir, {name: value})
    assert name in raised.value.message
    assert "the environment" in raised.value.message
    assert raised.value.exit_code == 3


def test_a_bad_value_in_dotenv_names_the_option_and_the_file(workdir):
    with pytest.raises(ConfigError) as raised:
        load(workdir, dotenv="# settings\nPCLOUD_PORT=5000\nMAX_UPLOAD_SIZE=huge\n")
    assert "MAX_UPLOAD_SIZE" in raised.value.message
    assert str(workdir / ".env") in raised.value.message


def test_an_empty_secret_key_in_dotenv_is_an_error_saying_so(workdir):
    with pytest.raises(ConfigError) as raised:
        load(workdir, dotenv="SECRET_KEY=\n")
    assert "SECRET_KEY is empty" in raised.value.message
    assert ".env" in raised.value.message
    assert not (workdir / "pcloud-data" / "secret_key").exists()


def test_an_empty_option_with_a_default_falls_back_to_the_default(workdir):
    assert load(workdir, dotenv="PCLOUD_PORT=\n").port == 5000


# --- .env.example documents exactly the real options -----------------------------------


def example_names() -> list[str]:
    """Every NAME= in .env.example, commented out or not."""
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)


@pytest.mark.parametrize("option", sorted(OPTION_NAMES))
def test_every_option_is_documented_in_env_example(option):
    assert option in example_names()


def test_every_name_in_env_example_is_a_real_option():
    assert set(example_names()) <= OPTION_NAMES
    assert example_names()  # the file was read


def test_env_example_loads_as_it_is(workdir):
    (workdir / ".env").write_text(ENV_EXAMPLE.read_text())
    settings = load_settings(environ={}, env_file=workdir / ".env")
    assert settings.port == 5000
    assert settings.max_upload_size == 16 * 1024**3


def test_every_option_has_help():
    for option in OPTIONS:
        assert option.help.strip(), option.env


# --- `pcloud serve` with nothing configured ---------------------------------------------


def clean_environment() -> dict[str, str]:
    """This process's environment without any pcloud setting, output unbuffered."""
    env = {key: value for key, value in os.environ.items() if key not in OPTION_NAMES}
    env = {key: value for key, value in env.items() if not key.startswith("PCLOUD_")}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


class Output:
    """Collects a process's output lines on a thread, so reading never blocks the test."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        return None

    @property
    def text(self) -> str:
        return "".join(self.lines)


def start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    """A pcloud process in a session of its own, so every worker it forks can be ended."""
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=cwd,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def end(process: subprocess.Popen) -> None:
    """Kill the process and the workers it forked, if any are left."""
    if process.poll() is None or process_group_alive(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))


def wait_until_serving(pid: int, workers: int, timeout: float) -> bool:
    """Whether every worker has built its waitress server (its thread pool runs) in time.

    The banner is printed before the workers start; a Ctrl-C sent before they are ready
    meets the startup race that test_a_worker_interrupted_while_starting_... pins.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            serving = [int(child) for child in children] if workers > 1 else [pid]
            if len(serving) == workers and all(thread_count(each) > 1 for each in serving):
                return True
        except (OSError, AttributeError):
            pass
        time.sleep(0.01)
    return False


def test_serve_with_zero_configuration_starts_answers_and_stops_on_ctrl_c(tmp_path):
    process = start(["-m", "pcloud", "serve", "--port", "0"], tmp_path)
    try:
        output = Output(process.stdout)
        started = output.wait_for(r"serving on http://\S+:(\d+)", timeout=30)
        assert started, output.text
        port = started.group(1)
        workers = output.wait_for(r"Workers:\s+(\d+) process", timeout=10)
        assert workers, output.text
        assert output.wait_for(r"Press Ctrl-C", timeout=10), output.text
        assert wait_until_serving(process.pid, int(workers.group(1)), timeout=10)

        response = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert response.status_code == 200
        assert "running" in response.text
        assert str((tmp_path / "pcloud-data").resolve()) in output.text
        assert re.search(r"Google sign-in:\s+off", output.text), output.text
        assert (tmp_path / "pcloud-data" / "secret_key").exists()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0, output.text
        output.wait_for(r"stopped", timeout=5)
        assert "stopped" in output.text
        assert "Traceback" not in output.text
    finally:
        end(process)


# Both scripts run the real server.run() with a signal delivered at one precise moment
# of its startup, which a test cannot otherwise hit on purpose.
CTRL_C_BEFORE_THE_WORKERS_EXIST = """
import os, signal
from pcloud.server import workers as server
from pcloud.api import served_app
from pcloud.config import load_settings
from pcloud.core import Pcloud

settings = load_settings(environ={}, env_file=None)
Pcloud.open(settings).close()
fork_worker = server._fork_worker

def fork_after_ctrl_c(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)  # handled by run()'s stop() before the fork
    return fork_worker(*args, **kwargs)

server._fork_worker = fork_after_ctrl_c
print("starting", flush=True)
server.run(settings, server.listen("127.0.0.1", 0), 2, served_app)
print("run() returned", flush=True)
"""

CTRL_C_WHILE_A_WORKER_STARTS = """
import logging, os, signal, time
from pcloud.server import workers as server
from pcloud.api import served_app
from pcloud.config import load_settings
from pcloud.core import Pcloud

logging.basicConfig(level=logging.INFO)
settings = load_settings(environ={}, env_file=None)
Pcloud.open(settings).close()

def open_app_during_ctrl_c(settings):
    time.sleep(0.2)  # every worker is forked by now
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(2)  # still starting when the parent's SIGTERM arrives
    return served_app(settings)

server.run(settings, server.listen("127.0.0.1", 0), 2, open_app_during_ctrl_c)
print("run() returned", flush=True)
"""


def test_a_ctrl_c_that_arrives_before_the_workers_are_forked_still_stops_the_server(tmp_path):
    process = start(["-c", CTRL_C_BEFORE_THE_WORKERS_EXIST], tmp_path)
    try:
        output = Output(process.stdout)
        assert output.wait_for(r"starting", timeout=30), output.text
        assert output.wait_for(r"run\(\) returned", timeout=1), output.text
        assert process.wait(timeout=5) == 0
    finally:
        end(process)


def test_a_worker_interrupted_while_starting_stops_quietly(tmp_path):
    process = start(["-c", CTRL_C_WHILE_A_WORKER_STARTS], tmp_path)
    try:
        output = Output(process.stdout)
        assert output.wait_for(r"run\(\) returned", timeout=10), output.text
        assert "Traceback" not in output.text
        assert "Worker failed" not in output.text
    finally:
        end(process)


WORKERS_THAT_KEEP_FAILING = """
import logging
from pcloud.server import workers as server
from pcloud.config import load_settings
from pcloud.core import Pcloud
from pcloud.errors import WorkersFailing

logging.basicConfig(level=logging.INFO)
settings = load_settings(environ={}, env_file=None)
Pcloud.open(settings).close()

def broken_open_app(settings):
    raise RuntimeError("the disk is full")

server.RESTART_PAUSE = 0.05
server.MAX_RESTARTS = 3
try:
    server.run(settings, server.listen("127.0.0.1", 0), 2, broken_open_app)
except WorkersFailing as error:
    print("gave up:", error, flush=True)
"""


def test_workers_that_keep_dying_are_restarted_with_growing_pauses_then_given_up(tmp_path):
    process = start(["-c", WORKERS_THAT_KEEP_FAILING], tmp_path)
    try:
        output = Output(process.stdout)
        assert output.wait_for(r"gave up: .*keep failing", timeout=20), output.text
        assert process.wait(timeout=5) == 0
        pauses = re.findall(r"starting another in (\d+(?:\.\d+)?) s", output.text)
        # Deaths 1..3 are restarted (pauses 0.05, 0.1, 0.2 s, printed rounded); the 4th stops.
        assert len(pauses) == 3, output.text
        assert "stopped unexpectedly 4 times" in output.text
    finally:
        end(process)


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has stopped; only its exit status is left


def test_workers_stop_when_their_supervisor_is_killed_outright(tmp_path):
    process = start(["-m", "pcloud", "serve", "--port", "0", "--workers", "2"], tmp_path)
    try:
        output = Output(process.stdout)
        started = output.wait_for(r"serving on http://\S+:(\d+)", timeout=30)
        assert started, output.text
        assert wait_until_serving(process.pid, 2, timeout=10)
        workers = [
            int(child)
            for child in Path(f"/proc/{process.pid}/task/{process.pid}/children")
            .read_text()
            .split()
        ]
        assert len(workers) == 2

        process.kill()  # SIGKILL: the supervisor can't pass anything on
        process.wait(timeout=5)

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_is_gone(pid) for pid in workers):
            time.sleep(0.05)
        assert all(_is_gone(pid) for pid in workers)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{started.group(1)}/", timeout=2)
    finally:
        end(process)


# --- Settings once: the table's defaults are Settings' defaults --------------------------


def test_every_settings_default_is_its_options_default_parsed():
    from dataclasses import MISSING, fields

    from pcloud.config import Settings

    defaults = {item.name: item.default for item in fields(Settings)}
    worked_out = {"data_dir", "database_url", "upload_folder", "secret_key"}  # by load_settings
    for option in OPTIONS:
        if option.default is None or option.field in worked_out:
            assert defaults[option.field] is MISSING, option.env
        else:
            assert defaults[option.field] == option.parse(option.default), option.env


def test_settings_made_directly_and_loaded_with_nothing_set_agree(workdir, tmp_path):
    from dataclasses import fields

    from pcloud.config import Settings

    loaded = load(workdir)
    direct = Settings(loaded.data_dir, loaded.database_url, loaded.upload_folder, "k")
    for item in fields(Settings):
        if item.compare and item.name != "secret_key":
            assert getattr(direct, item.name) == getattr(loaded, item.name), item.name


# --- Likely mistakes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("PCLOUD_DATADIR", "PCLOUD_DATA_DIR"),
        ("MAX_UPLOADSIZE", "MAX_UPLOAD_SIZE"),
        ("registration", "REGISTRATION"),
        ("PASWORD_MIN_LENGTH", "PASSWORD_MIN_LENGTH"),
    ],
)
def test_a_misspelled_setting_in_dotenv_is_warned_with_the_closest_name(workdir, name, closest):
    settings = load(workdir, dotenv=f"{name}=x\n")
    [warning] = settings.warnings
    assert warning.startswith(f"{name} in .env ({workdir / '.env'}) is not a pcloud setting")
    assert warning.endswith(f"did you mean {closest}?")


def test_other_programs_settings_in_dotenv_pass_in_silence(workdir):
    assert load(workdir, dotenv="AWS_PROFILE=home\nTZ=Europe/Paris\n").warnings == ()


def test_an_unknown_pcloud_name_in_the_environment_is_warned(workdir):
    [warning] = load(workdir, {"PCLOUD_FROBNICATE": "1"}).warnings
    assert "PCLOUD_FROBNICATE in the environment is not a pcloud setting" in warning


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PCLOUD_PORT", "abc", "expected a port number from 0 to 65535"),
        ("PCLOUD_PORT", "70000", "expected a port number from 0 to 65535"),
        ("PCLOUD_THREADS", "many", "expected a whole number of at least 1"),
        ("TRASH_DAYS", "-1", "expected a whole number of 0 or more"),
        ("REGISTRATION", "maybe", "expected open or closed"),
        ("REGISTRATION_EMAILS", "family.example", "is not an email pattern"),
    ],
)
def test_a_bad_number_or_word_is_said_as_clearly_as_a_bad_size(workdir, name, value, expected):
    with pytest.raises(ConfigError) as refused:
        load(workdir, {name: value})
    assert f"{name}={value!r} from the environment: " in refused.value.message
    assert expected in refused.value.message
    assert "invalid literal" not in refused.value.message


def test_the_dotenv_read_is_kept_in_the_settings(workdir):
    assert load(workdir).env_file is None
    assert load(workdir, dotenv="TRASH_DAYS=3\n").env_file == workdir.resolve() / ".env"


def test_loading_without_create_makes_no_data_folder(workdir):
    from pcloud.config import MissingDataFolder

    with pytest.raises(MissingDataFolder, match="No pcloud data folder"):
        load_settings(environ={}, env_file=None, create=False)
    assert list(workdir.iterdir()) == []
