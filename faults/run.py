#!/usr/bin/env python3
"""The fault suite: the platform as separate processes under a booking load, with faults
injected one after the other, then the invariants checked.

Faults: every service killed with SIGKILL and restarted, in turn; the appointments service
paused (SIGSTOP) past the slot lock's TTL; Redis stopped and started; the Kafka-protocol
broker paused; PostgreSQL stopped and started. Invariants afterwards: no two active
appointments overlap for a doctor (visits and their buffers; waitlist offers included), room
or nurse; every SCHEDULED appointment has a captured payment (or, booked far ahead, a saved
card whose capture follows its authorisation) and every captured payment a SCHEDULED or
COMPLETED appointment or a refund; every
outbox row was published and handled by every consumer group that reads its topic; no email
was sent twice. Prints what was injected and what was checked; exits 1 if an invariant fails.

Needs PostgreSQL, Redis and the tansu binary (POLYCLINIC_TEST_TANSU) on this machine, and
aiosmtpd from PyPI (installed when missing). Run: python3 faults/run.py
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/polyclinic/target"))
BIN = os.path.join(TARGET, "debug", "polyclinic")
SERVER = os.environ.get("POLYCLINIC_FAULTS_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DB = "polyclinic_faults"
TANSU = os.environ.get("POLYCLINIC_TEST_TANSU", os.path.expanduser("~/.cache/polyclinic/tools/bin/tansu"))
BROKER_PORT = 19192
SMTP_PORT = 17025
PORTS = {"gateway": 17080, "identity": 17081, "appointments": 17083, "payments": 17084,
         "notifications": 17085, "prescriptions": 17086}
ORDER = ["identity", "appointments", "payments", "notifications", "prescriptions", "gateway"]
GATEWAY = f"http://127.0.0.1:{PORTS['gateway']}"
ADMIN_PASSWORD = "fault suite first passphrase"
SLOT_LOCK_TTL = 10
# This run's topics and Redis keys: one prefix shared by every process it starts.
RUN = uuid.uuid4().hex[:8]

log_lines = []


def say(text):
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", flush=True)
    log_lines.append(text)


def psql(sql, database=DB):
    out = subprocess.run(["psql", f"{SERVER}/{database}", "-Atqc", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr.strip()}")
    return [line.split("|") for line in out.stdout.strip().splitlines() if line]


# --- the SMTP server that counts what arrives -------------------------------------------

received = {}  # (recipients, Message-ID) -> arrival times
received_lock = threading.Lock()
killed_at = {}  # service -> times it was SIGKILLed


def start_smtp():
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "aiosmtpd"], check=True)
        from aiosmtpd.controller import Controller
    from email import message_from_bytes

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = message_from_bytes(envelope.content)
            # Each notification has its own Message-ID, the same on every attempt.
            key = (tuple(envelope.rcpt_tos), message["Message-ID"])
            with received_lock:
                received.setdefault(key, []).append(time.time())
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    return controller


# --- processes ----------------------------------------------------------------------------

def environment():
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"{SERVER}/{DB}",
        "POLYCLINIC_LOG_FILTER": os.environ.get("FAULTS_LOG", "warn"),
        "POLYCLINIC_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE": "100000000",
        "POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000000",
        "POLYCLINIC_BOOKING_MAX_PENDING_PER_PATIENT": "100000",
        "POLYCLINIC_BOOKING_MIN_NOTICE_MINUTES": "0",
        "POLYCLINIC_PUBLIC_URL": GATEWAY,
        "POLYCLINIC_EVENT_BUS": "kafka",
        "POLYCLINIC_KAFKA_BROKERS": f"127.0.0.1:{BROKER_PORT}",
        "POLYCLINIC_KAFKA_PROPERTIES": os.environ.get("FAULTS_KAFKA_PROPERTIES", "batch.num.messages=1"),
        "POLYCLINIC_KAFKA_PARTITIONS": os.environ.get("FAULTS_PARTITIONS", "3"),
        "POLYCLINIC_KAFKA_TOPIC_PREFIX": f"faults-{RUN}-",
        "POLYCLINIC_LOCKS": "redis",
        "POLYCLINIC_REDIS_KEY_PREFIX": f"faults-{RUN}:",
        "POLYCLINIC_EMAIL": "smtp",
        "POLYCLINIC_SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}?tls=none",
        "POLYCLINIC_EMAIL_RETRY_BASE_MS": "500",
        "POLYCLINIC_EVENTS_RETRY_BASE_MS": "200",
        "POLYCLINIC_EVENTS_MAX_ATTEMPTS": "50",
    })
    for service, port in PORTS.items():
        env[f"POLYCLINIC_{service.upper()}_PORT"] = str(port)
        env[f"POLYCLINIC_{service.upper()}_URL"] = f"http://127.0.0.1:{port}"
    return env


processes = {}


def start(service):
    log = open(f"/tmp/polyclinic-faults-{service}.log", "ab")
    env = environment()
    # Static group membership, as deploy/ configures it: a restarted process takes its
    # partitions back at once. (FAULTS_DYNAMIC=1 leaves it out; tansu 0.6 then never gives
    # up on a member that was killed, and the restarted one's groups stall for good.)
    if not os.environ.get("FAULTS_DYNAMIC"):
        env["POLYCLINIC_KAFKA_GROUP_INSTANCE_ID"] = service
    processes[service] = subprocess.Popen([BIN, service], env=env, stdout=log, stderr=log)


def ready(service, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[service]}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service} did not become ready")


broker = None


def start_broker():
    global broker
    broker = subprocess.Popen([TANSU, "broker", "--listener-url", f"tcp://127.0.0.1:{BROKER_PORT}",
                               "--advertised-listener-url", f"tcp://127.0.0.1:{BROKER_PORT}",
                               "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)


# --- HTTP ---------------------------------------------------------------------------------

def call(method, path, token=None, body=None, key=None, form=None, timeout=20):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in form.items()).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if token:
        headers["authorization"] = f"Bearer {token}"
    if key:
        headers["idempotency-key"] = key
    request = urllib.request.Request(GATEWAY + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read().decode()
            return answer.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text
    except Exception as error:
        return 0, str(error)


def retried(method, path, token, body=None, key=None, patience=90):
    """Sends until an answer that is not a transient failure (0, 502, 503, 504, or the key
    still held by an attempt that a fault interrupted, for up to its 60 s lease), as a
    persistent client would; the same idempotency key on every attempt."""
    status, answer = 0, None
    deadline = time.time() + patience
    while time.time() < deadline:
        status, answer = call(method, path, token, body, key)
        in_flight = status == 409 and isinstance(answer, dict) and answer.get("code") == "idempotency_key_in_flight"
        if status not in (0, 502, 503, 504) and not in_flight:
            return status, answer
        time.sleep(1)
    return status, answer


def login(user, password):
    status, answer = call("POST", "/api/auth/token", form={"grant_type": "password", "username": user, "password": password})
    if status != 200:
        raise RuntimeError(f"login of {user}: {status} {answer}")
    return answer["access_token"]


# --- the load -----------------------------------------------------------------------------

outcomes = Counter()
stop_load = threading.Event()


def worker(clinic, patient_token, slots, admin_token):
    while not stop_load.is_set():
        try:
            starts_at = slots.pop()
        except IndexError:
            return
        booking = uuid.uuid4().hex
        status, reserved = retried("POST", "/api/appointments", patient_token,
                                   {"doctor_id": clinic["doctor"], "starts_at": starts_at}, key=f"reserve-{booking}")
        if status != 201:
            outcomes[f"reserve {status}"] += 1
            continue
        payment = reserved["payment"]["id"]
        status, _ = retried("POST", f"/api/payments/{payment}/confirm", patient_token,
                            {"payment_method": "pm_card_visa"}, key=f"pay-{booking}")
        if status != 200:
            outcomes[f"pay {status}"] += 1
            continue
        appointment = reserved["id"]
        deadline = time.time() + 60
        while time.time() < deadline:
            status, current = call("GET", f"/api/appointments/{appointment}", patient_token)
            if status == 200 and current["status"] == "PAID":
                break
            time.sleep(0.3)
        else:
            outcomes["never paid"] += 1
            continue
        choice = random.random()
        if choice < 0.6:
            status, _ = retried("POST", f"/api/appointments/{appointment}/approve", admin_token,
                                {"room_id": clinic["room"], "nurse_id": clinic["nurse"]}, key=f"approve-{booking}")
            outcomes[f"approve {status}"] += 1
            if status == 200 and random.random() < 0.3:
                status, _ = retried("POST", f"/api/appointments/{appointment}/cancel", admin_token,
                                    {"reason": "fault suite"}, key=f"cancel-{booking}")
                outcomes[f"cancel after capture {status}"] += 1
        elif choice < 0.8:
            status, _ = retried("POST", f"/api/appointments/{appointment}/reject", admin_token,
                                {"reason": "fault suite"}, key=f"reject-{booking}")
            outcomes[f"reject {status}"] += 1
        else:
            status, _ = retried("POST", f"/api/appointments/{appointment}/cancel", patient_token,
                                {"reason": "changed my mind"}, key=f"cancel-{booking}")
            outcomes[f"patient cancel {status}"] += 1


# --- the faults ---------------------------------------------------------------------------

def kill_each():
    for service in os.environ.get("FAULTS_KILL", ",".join(ORDER)).split(","):
        say(f"fault: SIGKILL {service}, restart after 2 s")
        killed_at.setdefault(service, []).append(time.time())
        processes[service].send_signal(signal.SIGKILL)
        processes[service].wait()
        time.sleep(2)
        start(service)
        ready(service)
        time.sleep(3)


def pause_appointments():
    say(f"fault: SIGSTOP appointments for {SLOT_LOCK_TTL + 3} s (past the slot lock's TTL), then SIGCONT")
    processes["appointments"].send_signal(signal.SIGSTOP)
    time.sleep(SLOT_LOCK_TTL + 3)
    processes["appointments"].send_signal(signal.SIGCONT)
    time.sleep(3)


def stop_redis():
    say("fault: Redis shut down for 5 s")
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True)
    time.sleep(5)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"], check=True)
    time.sleep(3)


def pause_broker():
    say("fault: the broker paused (SIGSTOP) for 8 s")
    broker.send_signal(signal.SIGSTOP)
    time.sleep(8)
    broker.send_signal(signal.SIGCONT)
    time.sleep(3)


def stop_postgres():
    say("fault: PostgreSQL stopped for 5 s")
    cluster = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "stop", "-m", "fast"], check=True)
    time.sleep(5)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start"], check=True)
    for _ in range(60):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0:
            break
        time.sleep(0.5)
    time.sleep(5)


FAULTS = {"kill": kill_each, "pause": pause_appointments, "redis": stop_redis,
          "broker": pause_broker, "postgres": stop_postgres}


def inject():
    """Every fault in turn, or those FAULTS_ONLY names (comma-separated keys of FAULTS)."""
    chosen = os.environ.get("FAULTS_ONLY", ",".join(FAULTS)).split(",")
    for name in chosen:
        FAULTS[name.strip()]()


# --- the invariants -----------------------------------------------------------------------

def check():
    failures = []

    def expect(name, rows):
        if rows:
            failures.append(f"{name}: {rows[:5]}")
            say(f"check FAILED: {name}: {rows[:5]}")
        else:
            say(f"check ok: {name}")

    for column, name in [("doctor_id", "doctor"), ("room_id", "room"), ("nurse_id", "nurse")]:
        # A doctor's appointments keep their buffers too; rooms and nurses their visits.
        statuses = "('OFFERED', 'PENDING', 'PAID', 'SCHEDULED')" if name == "doctor" else "('SCHEDULED')"
        kept = "blocked" if name == "doctor" else "period"
        expect(f"no two active appointments overlap for a {name}", psql(
            f"select a.id, b.id from appointments.appointments a join appointments.appointments b "
            f"on a.{column} = b.{column} and a.id < b.id and a.{kept} && b.{kept} "
            f"where a.status in {statuses} and b.status in {statuses}"))
    expect("every SCHEDULED appointment has a captured payment, or a saved card to capture", psql(
        "select a.id from appointments.appointments a left join payments.payments p on p.appointment_id = a.id "
        "where a.status = 'SCHEDULED' and (p.id is null or not ("
        "(p.status = 'succeeded' and p.amount_captured > 0) "
        "or (p.status in ('card_saved', 'requires_payment_method') and p.capture_requested_at is not null)))"))
    expect("every captured payment has a SCHEDULED or COMPLETED appointment, or was refunded", psql(
        "select p.id, a.status from payments.payments p join appointments.appointments a on a.id = p.appointment_id "
        "where p.amount_captured > 0 and a.status not in ('SCHEDULED', 'COMPLETED') and p.amount_refunded < p.amount_captured"))
    expect("no appointment that ended without a visit keeps an open or authorised payment", psql(
        "select p.id, a.status, p.status from payments.payments p join appointments.appointments a on a.id = p.appointment_id "
        "where a.status in ('EXPIRED', 'REJECTED', 'CANCELLED') "
        "and p.status in ('requires_payment_method', 'card_saved', 'requires_capture')"))
    for schema in ["identity", "appointments", "payments", "prescriptions", "notifications"]:
        expect(f"every {schema} outbox row was published", psql(
            f"select event_id from {schema}.outbox where published_at is null"))
    for schema, consumer, topic in CONSUMERS:
        expect(f"every event reached {consumer}", unconsumed(schema, consumer, topic))
    expect("every email has a Message-ID", [key for key in received if not key[1]])
    # SMTP has no idempotency: a message whose "250 OK" arrived just before the sender was
    # SIGKILLed, with no time to record it, is sent again (with the same Message-ID). Only
    # such a message may arrive twice; any other second copy is a defect.
    def in_flight_at_kill(arrivals):
        # The SMTP server may take in the last bytes a moment after the signal was sent.
        return any(abs(kill - arrivals[0]) < 1.0 for kill in killed_at.get("notifications", []))
    twice = {key: times for key, times in received.items() if len(times) > 1}
    ambiguous = [key for key, times in twice.items() if len(times) == 2 and in_flight_at_kill(times)]
    expect("no email was sent twice", [key for key in twice if key not in ambiguous])
    if ambiguous:
        say(f"note: {len(ambiguous)} message(s) in flight when notifications was SIGKILLed were sent again, "
            f"with the same Message-ID: {ambiguous}")
    expect("every message written was sent", psql(
        "select id, status, attempts, last_error from notifications.notifications where status <> 'SENT'"))
    return failures


CONSUMERS = [("appointments", "appointments-payments", "polyclinic.payments"),
             ("payments", "payments-settlement", "polyclinic.appointments"),
             ("notifications", "notifications-mail", None), ("notifications", "event-log", None),
             ("notifications", "notifications-calendar", "polyclinic.appointments")]


def unconsumed(schema, consumer, topic):
    """The outbox rows of the consumer's topics that its inbox does not have."""
    sources = [topic.split(".")[1]] if topic else ["identity", "appointments", "payments", "prescriptions"]
    union = " union all ".join(f"select event_id from {source}.outbox" for source in sources)
    return psql(f"select e.event_id from ({union}) e left join {schema}.inbox i "
                f"on i.event_id = e.event_id and i.consumer = '{consumer}' where i.event_id is null")


def quiesce(timeout=180):
    """Waits until every outbox is published, every consumer caught up and every message
    sent; says how long that took."""
    started = time.time()
    while time.time() < started + timeout:
        try:
            pending = sum(int(psql(f"select count(*) from {s}.outbox where published_at is null")[0][0])
                          for s in ["identity", "appointments", "payments", "prescriptions", "notifications"])
            behind = sum(len(unconsumed(*consumer)) for consumer in CONSUMERS)
            unsent = int(psql("select count(*) from notifications.notifications where status = 'PENDING'")[0][0])
            if pending == 0 and behind == 0 and unsent == 0:
                say(f"quiet {time.time() - started:.0f} s after the load stopped: every outbox published, "
                    f"every consumer caught up, every message sent")
                time.sleep(3)
                return
        except RuntimeError:
            pass
        time.sleep(1)
    say(f"not quiet after {timeout} s")


def main():
    build_env = dict(os.environ, CARGO_TARGET_DIR=TARGET, CARGO_INCREMENTAL=os.environ.get("CARGO_INCREMENTAL", "0"))
    subprocess.run(["cargo", "build", "--locked", "-p", "polyclinic"], cwd=ROOT, env=build_env, check=True)
    psql(f"drop database if exists {DB} with (force)", database="postgres")
    smtp = start_smtp()
    start_broker()
    subprocess.run([BIN, "migrate"], env=environment(), check=True, capture_output=True)
    for service in ORDER:
        start(service)
        ready(service)
    try:
        admin = login("admin@polyclinic.local", ADMIN_PASSWORD)
        _, department = call("POST", "/api/departments", admin, {"name": "Faults"})
        _, room = call("POST", "/api/rooms", admin, {"name": "F-1", "department_id": department["id"]})
        staff = {}
        for role in ["DOCTOR", "NURSE"]:
            body = {"role": role, "first_name": "F", "last_name": role.lower(), "email": f"{role.lower()}@faults.example",
                    "password": "fault suite staff passphrase", "department_id": department["id"]}
            if role == "DOCTOR":
                body.update({"specialization": "GP", "years_of_experience": 3, "consultation_fee": {"amount": 5000, "currency": "EUR"}})
            status, user = call("POST", "/api/users/staff", admin, body)
            staff[role] = user["id"]
        clinic = {"doctor": staff["DOCTOR"], "nurse": staff["NURSE"], "room": room["id"]}
        doctor_token = login("doctor@faults.example", "fault suite staff passphrase")
        days = [{"weekday": d, "starts_at": "00:00", "ends_at": "23:45", "slot_minutes": 15} for d in range(1, 8)]
        call("PUT", f"/api/doctors/{clinic['doctor']}/schedule", doctor_token, {"days": days})
        patients = []
        for n in range(8):
            email = f"patient{n}@faults.example"
            call("POST", "/api/users/patients", None, {"first_name": "F", "last_name": f"P{n}", "email": email,
                                                        "password": "fault suite patient passphrase"})
            patients.append(login(email, "fault suite patient passphrase"))
        start_day = (datetime.now(timezone.utc) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
        slots = [(start_day + timedelta(minutes=15 * k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(95 * 20)]
        random.shuffle(slots)
        say(f"load: {len(patients)} patients booking, paying, and being approved, rejected or cancelled")
        threads = [threading.Thread(target=worker, args=(clinic, token, slots, admin), daemon=True) for token in patients]
        for thread in threads:
            thread.start()
        time.sleep(5)
        if os.environ.get("FAULTS_NONE"):
            say("no faults injected (FAULTS_NONE)")
        else:
            inject()
        say("faults done; the load goes on for 10 s more")
        time.sleep(10)
        stop_load.set()
        for thread in threads:
            thread.join(timeout=120)
        say(f"load outcomes: {dict(outcomes)}")
        quiesce()
        failures = check()
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if not os.environ.get("FAULTS_KEEP"):
            broker.kill()
        smtp.stop()
        if os.environ.get("FAULTS_KEEP"):
            print(f"kept the database {DB} and the broker on port {BROKER_PORT} (FAULTS_KEEP)")
        else:
            try:
                psql(f"drop database if exists {DB} with (force)", database="postgres")
            except RuntimeError:
                pass
    print()
    print("injected and checked:")
    for line in log_lines:
        print(f"  {line}")
    if failures:
        print(f"\n{len(failures)} invariant(s) broken")
        sys.exit(1)
    print("\nevery invariant holds")


if __name__ == "__main__":
    main()
