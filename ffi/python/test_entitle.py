"""Tests of the Python wrapper over entitle's C ABI (unittest only).

The vendor's side is the `entitle` CLI: $ENTITLE_CLI names it (else the
repository's target/debug/entitle); ffi/run-python-tests.sh builds both it
and the library and runs these.
"""

import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import entitle  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
CLI = os.environ.get("ENTITLE_CLI", str(REPOSITORY / "target" / "debug" / "entitle"))

SPEC = {
    "product": "acme-cad",
    "name": "Acme CAD Pro",
    "features": [
        {"code": "export"},
        {"code": "render", "consumption": {"max": 2}},
        {"code": "simulate", "floating": {"seats": 1, "lease_secs": 300}},
    ],
}


def cli(*args: str) -> dict:
    """Runs the CLI with --json and returns what it printed."""
    done = subprocess.run([CLI, "--json", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"entitle {' '.join(args)}: {done.stdout} {done.stderr}")
    return json.loads(done.stdout)


class Vendor:
    """A vendor key pair made by `entitle keygen`, and licenses it signs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        cli("keygen", "--out", str(directory / "vendor"))
        self.pub = (directory / "vendor.pub").read_text()

    def license(self, license_id: str, **extra) -> str:
        spec = dict(SPEC, id=license_id, **extra)
        spec_path = self.directory / f"{license_id}.json"
        spec_path.write_text(json.dumps(spec))
        out = self.directory / f"{license_id}.lic"
        cli("issue", "--key", str(self.directory / "vendor.key"), "--spec", str(spec_path),
            "--out", str(out))
        return out.read_text()


class Server:
    """A real `entitle serve` on 127.0.0.1, a free port, over a state the
    CLI made holding `license_path`; stopped (SIGTERM) by close()."""

    def __init__(self, directory: Path, vendor_pub: Path, license_path: Path) -> None:
        state = str(directory / "server")
        cli("--state", state, "init", "--pub", str(vendor_pub), "--product", "acme-cad")
        cli("--state", state, "license", "add", str(license_path))
        done = subprocess.run([CLI, "--state", state, "serve", "--print-lease-pub"],
                              capture_output=True, text=True, check=True)
        self.key_pem = done.stdout
        self.state = state
        self.process = subprocess.Popen(
            [CLI, "--state", state, "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on http://127.0.0.1:"):
            self.close()
            raise AssertionError(f"entitle serve said {line!r}: {self.process.stderr.read()}")
        self.url = line.removeprefix("listening on ")

    def leases(self) -> list:
        return cli("--state", self.state, "lease", "list")["items"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process.stderr.close()


def closed_url() -> str:
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class WrapperTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.vendor = Vendor(cls.dir)
        cls.license = cls.vendor.license("lic_py")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def engine(self) -> entitle.Engine:
        return entitle.Engine("acme-cad", self.vendor.pub)

    def test_version_is_a_str(self) -> None:
        self.assertRegex(entitle.version(), r"^\d+\.\d+\.\d+")

    def test_a_gate_follows_the_license_added(self) -> None:
        with self.engine() as engine:
            export = engine.gate("export")
            self.assertFalse(export.check())
            self.assertEqual(export.decision().reason, "NOT_LICENSED")
            engine.add_license(self.license)
            self.assertTrue(export.check())
            decision = engine.check_feature("export")
            self.assertTrue(decision.allowed)
            self.assertEqual((decision.reason, decision.warning, decision.until), ("OK", None, None))
            self.assertEqual(decision.message, "Licensed.")
            export.close()
            export.close()  # twice: nothing

    def test_consuming_past_the_quota_raises_with_the_stable_code(self) -> None:
        with self.engine() as engine:
            engine.add_license(self.license)
            engine.consume("render")
            engine.consume("render")
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.consume("render")
            error = raised.exception
            self.assertEqual(error.code, "CONSUMPTION_LIMIT")
            self.assertEqual(error.status, 23)
            self.assertIn("render", error.message)
            self.assertIsInstance(error.user_message, str)
            self.assertEqual(engine.check_feature("render").reason, "CONSUMPTION_LIMIT")

    def test_a_floating_feature_is_allowed_while_the_lease_is_held(self) -> None:
        with self.engine() as engine:
            engine.add_license(self.license)
            self.assertEqual(engine.check_feature("simulate").reason, "LEASE_REQUIRED")
            with engine.lease("simulate") as seat:
                self.assertTrue(seat.check().allowed)
                self.assertTrue(engine.check_feature("simulate").allowed)
            self.assertEqual(engine.check_feature("simulate").reason, "LEASE_REQUIRED")

    def test_license_info_is_a_list_of_dicts(self) -> None:
        with self.engine() as engine:
            self.assertEqual(engine.license_info(), [])
            engine.add_license(self.license)
            info = engine.license_info()
            self.assertEqual(info[0]["id"], "lic_py")
            self.assertEqual(info[0]["name"], "Acme CAD Pro")
            self.assertIsInstance(engine.license_info_json(), str)

    def test_bad_input_raises_and_never_crashes(self) -> None:
        with self.engine() as engine:
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.add_license("not a license")
            self.assertEqual(raised.exception.code, "MALFORMED")
            self.assertEqual(raised.exception.user_message, "This is not a valid license file.")
            with self.assertRaises(TypeError):
                engine.add_license(b"bytes are not str")
            with self.assertRaises(ValueError):
                engine.consume("ren\0der")
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.consume("render", 0)
            self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.request()
            self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
        # Closed: the library is handed NULL and says so.
        with self.assertRaises(entitle.EntitleError) as raised:
            engine.check_feature("export")
        self.assertEqual(raised.exception.code, "NULL")
        with self.assertRaises(entitle.EntitleError) as raised:
            entitle.Engine("acme-cad", "no key here")
        self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
        self.assertIn("PEM", raised.exception.message)

    def test_a_license_of_another_vendor_is_refused(self) -> None:
        other = Vendor(Path(tempfile.mkdtemp(dir=self.dir)))
        with self.engine() as engine:
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.add_license(other.license("lic_other"))
            self.assertEqual(raised.exception.code, "UNKNOWN_KEY")

    def test_reason_messages_by_code_or_number(self) -> None:
        self.assertEqual(entitle.reason_message("EXPIRED"), "Your license has expired.")
        self.assertEqual(entitle.reason_message(5), "Your license has expired.")
        self.assertEqual(entitle.status_code(12), "SEAT_LIMIT")
        self.assertEqual(entitle.status_code(99999), "UNKNOWN_ERROR")
        with self.assertRaises(ValueError):
            entitle.reason_message("NO_SUCH_CODE")

    def test_a_state_the_cli_made_is_shared_with_it(self) -> None:
        state = self.dir / "state"
        cli("--state", str(state), "init", "--pub", str(self.dir / "vendor.pub"),
            "--product", "acme-cad")
        lic = self.dir / "lic_py.lic"
        cli("--state", str(state), "license", "add", str(lic))
        with entitle.Engine("acme-cad", self.vendor.pub, str(state)) as engine:
            self.assertTrue(engine.gate("export").check())
            engine.consume("render")
        self.assertEqual(cli("--state", str(state), "consumption", "render")["used"], 1)


    def test_version_channel_and_release_date_are_checked_against_the_license(self) -> None:
        limited = self.vendor.license(
            "lic_v2", versions=">=2.0, <3", channels=["stable"],
            maintenance_until="2026-06-01T00:00:00Z",
        )

        def reason(**options) -> str:
            with entitle.Engine("acme-cad", self.vendor.pub, **options) as engine:
                engine.add_license(limited)
                return engine.check_feature("export").reason

        before = datetime.date(2026, 5, 1)
        self.assertEqual(reason(version="2.3.1", channel="stable", release_date=before), "OK")
        self.assertEqual(reason(version="3.0.0", channel="stable", release_date=before),
                         "VERSION_NOT_LICENSED")
        self.assertEqual(reason(version="2.3.1", channel="beta", release_date=before),
                         "VERSION_NOT_LICENSED")
        self.assertEqual(reason(channel="stable"), "VERSION_NOT_LICENSED")
        after = datetime.datetime(2026, 7, 1, tzinfo=datetime.timezone.utc)
        self.assertEqual(reason(version="2.3.1", channel="stable", release_date=after),
                         "MAINTENANCE_EXPIRED")
        self.assertEqual(reason(version="2.3.1", channel="stable", release_date=1780272000 - 1),
                         "OK")

    def test_options_that_are_not_a_version_channel_or_date_raise(self) -> None:
        with self.assertRaises(entitle.EntitleError) as raised:
            entitle.Engine("acme-cad", self.vendor.pub, version="2.3")
        self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
        self.assertIn("semver", raised.exception.message)
        with self.assertRaises(entitle.EntitleError) as raised:
            entitle.Engine("acme-cad", self.vendor.pub, channel="")
        self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
        with self.assertRaises(entitle.EntitleError) as raised:
            entitle.Engine("acme-cad", self.vendor.pub, release_date=-1)
        self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
        with self.assertRaises(ValueError):
            entitle.Engine("acme-cad", self.vendor.pub,
                           release_date=datetime.datetime(2026, 1, 1))
        with self.assertRaises(TypeError):
            entitle.Engine("acme-cad", self.vendor.pub, release_date="2026-01-01")

    def test_a_seat_from_a_license_server_counts_and_goes_back(self) -> None:
        server = Server(Path(tempfile.mkdtemp(dir=self.dir)), self.dir / "vendor.pub",
                        self.dir / "lic_py.lic")
        try:
            with self.engine() as engine, self.engine() as other:
                engine.add_license(self.license)
                other.add_license(self.license)
                gate = engine.gate("simulate")
                self.assertFalse(gate.check())
                with engine.lease_from_server(server.url, server.key_pem, "simulate") as seat:
                    self.assertTrue(gate.check())
                    self.assertTrue(seat.check().allowed)
                    self.assertTrue(seat.id.startswith("lease_"), seat.id)
                    on_server = server.leases()
                    self.assertEqual([lease["id"] for lease in on_server], [seat.id])
                    self.assertGreater(seat.expires_at, datetime.datetime.now().timestamp())
                    with self.assertRaises(entitle.EntitleError) as raised:
                        other.lease_from_server(server.url, server.key_pem, "simulate")
                    self.assertEqual(raised.exception.code, "FLOATING_EXHAUSTED")
                self.assertFalse(gate.check())
                self.assertEqual(server.leases(), [])
                with self.assertRaises(entitle.EntitleError) as raised:
                    seat.id
                self.assertEqual(raised.exception.code, "NULL")
                # Redundant servers: one that does not answer is passed over.
                with socket.socket() as closed:
                    closed.bind(("127.0.0.1", 0))
                    down = "http://127.0.0.1:%d" % closed.getsockname()[1]
                with engine.lease_from_server([down, server.url], server.key_pem,
                                              "simulate") as seat:
                    self.assertEqual([lease["id"] for lease in server.leases()], [seat.id])
                self.assertEqual(server.leases(), [])
                # Signed with another key: refused, and the seat goes back.
                with self.assertRaises(entitle.EntitleError) as raised:
                    engine.lease_from_server(server.url, self.vendor.pub, "simulate")
                self.assertEqual(raised.exception.code, "LEASE_KEY_MISMATCH")
                self.assertEqual(server.leases(), [])
        finally:
            server.close()

    def test_a_server_that_is_not_there_raises_server_unreachable(self) -> None:
        url = closed_url()
        with self.engine() as engine:
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.lease_from_server(url, self.vendor.pub, "simulate")
            self.assertEqual(raised.exception.code, "SERVER_UNREACHABLE")
            self.assertIn(url.removeprefix("http://"), raised.exception.message)
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.lease_from_server("ftp://nowhere", self.vendor.pub)
            self.assertEqual(raised.exception.code, "INVALID_ARGUMENT")
            with self.assertRaises(TypeError):
                engine.lease_from_server(None, self.vendor.pub)


    def test_users_take_seats_and_give_them_back(self) -> None:
        with self.engine() as engine:
            engine.add_license(self.vendor.license("lic_seats", seats={"max": 1}))
            self.assertTrue(engine.can_add_user().allowed)
            self.assertEqual(engine.add_user("ada").reason, "OK")
            self.assertEqual(engine.can_add_user().reason, "SEAT_LIMIT")
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.add_user("bob")
            self.assertEqual(raised.exception.code, "SEAT_LIMIT")
            engine.remove_user("ada")
            self.assertTrue(engine.add_user("bob", "named").allowed)
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.remove_user("ada")
            self.assertEqual(raised.exception.code, "USER_NOT_FOUND")

    def test_giving_this_device_up_returns_a_receipt(self) -> None:
        with self.engine() as engine:
            engine.add_license(self.vendor.license(
                "lic_nl", activations={"max": 1, "max_transfers": 1}))
            with self.assertRaises(entitle.EntitleError) as raised:
                engine.deactivate_this_device()
            self.assertEqual(raised.exception.code, "NOT_ACTIVATED")
            engine.activate_this_device()
            self.assertTrue(engine.check_feature("export").allowed)
            receipt = engine.deactivate_this_device("lic_nl")
            self.assertIn("BEGIN ENTITLE", receipt)
            self.assertEqual(engine.check_feature("export").reason, "NOT_ACTIVATED")
            self.assertEqual(engine.deactivate_this_device(), receipt)


if __name__ == "__main__":
    unittest.main()
