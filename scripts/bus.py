#!/usr/bin/env python3
"""A few `nats` CLI verbs, for machines without the Go CLI (needs nats-py).

  bus.py req SUBJECT JSON      request; prints every reply frame (groups.create streams)
  bus.py sub SUBJECT           print messages as they arrive (Ctrl-C to stop)
  bus.py stream STREAM         print every message stored in a JetStream stream
  bus.py micro [NAME]          list NATS services ($SRV.INFO) and their stats

NATS_URL selects the server (default nats://127.0.0.1:4222); NATS_USER and
NATS_PASSWORD (or NATS_CREDS, a credentials file) the user, as for the services
and the nats CLI. The platform refuses anonymous clients: people use `ops`
(after scripts/run.sh: `source data/nats-ops.env`).
"""
import asyncio, json, os, sys

try:
    import nats
except ImportError:
    sys.exit("bus.py needs nats-py: python3 -m pip install nats-py")

URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


def credentials():
    user, password = os.environ.get("NATS_USER"), os.environ.get("NATS_PASSWORD")
    creds = os.environ.get("NATS_CREDS")
    if creds:
        return {"user_credentials": creds}
    if user and password:
        return {"user": user, "password": password}
    if user or password:
        sys.exit("set NATS_USER and NATS_PASSWORD together")
    return {}


def show(msg):
    err = (msg.headers or {}).get("Nats-Service-Error")
    body = msg.data.decode() or "{}"
    try:
        body = json.dumps(json.loads(body), indent=2)
    except ValueError:
        pass
    print(f"[{msg.subject}]" + (f" error={err}" if err else ""))
    print(body)


async def req(nc, subject, payload):
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, payload.encode(), reply=inbox)
    while True:
        try:
            msg = await sub.next_msg(timeout=10)
        except Exception:
            sys.exit("no reply within 10 s")
        show(msg)
        data = json.loads(msg.data or b"{}")
        # groups.create replies in frames: group, codes..., end. A redeem is
        # followed by wallet-svc's credit notice on the same inbox.
        if subject == "giftcode.redeem" and not msg.headers and "redemption_id" not in data:
            try:
                show(await sub.next_msg(timeout=3))
            except Exception:
                print("(no credit notice within 3 s: is wallet-svc running?)")
            return
        if msg.headers or data.get("type") in (None, "end"):
            return


async def sub(nc, subject):
    s = await nc.subscribe(subject)
    async for msg in s.messages:
        show(msg)


async def stream(nc, name):
    js = nc.jetstream()
    info = await js.stream_info(name)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            m = await js.get_msg(name, seq)
        except Exception:
            continue
        print(f"#{seq} {m.subject}")
        print(json.dumps(json.loads(m.data), indent=2))


async def micro(nc, name):
    subject = "$SRV.INFO" + (f".{name}" if name else "")
    inbox = nc.new_inbox()
    s = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox)
    try:
        while True:
            m = await s.next_msg(timeout=0.5)
            info = json.loads(m.data)
            print(f"{info['name']} {info['version']} id={info['id']}: {info.get('description', '')}")
            for ep in info.get("endpoints", []):
                print(f"  {ep['subject']:32} queue={ep.get('queue_group', '')}")
    except Exception:
        pass


async def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    async def report(e):  # one line, not nats-py's traceback
        print(e, file=sys.stderr)

    try:
        nc = await nats.connect(URL, allow_reconnect=False, error_cb=report, **credentials())
    except Exception as e:
        hint = "" if os.environ.get("NATS_USER") else " (as ops: source data/nats-ops.env)"
        sys.exit(f"cannot connect to {URL}: {e}{hint}")
    try:
        if argv[1] == "req" and len(argv) >= 3:
            await req(nc, argv[2], argv[3] if len(argv) > 3 else "{}")
        elif argv[1] == "sub" and len(argv) == 3:
            await sub(nc, argv[2])
        elif argv[1] == "stream" and len(argv) == 3:
            await stream(nc, argv[2])
        elif argv[1] == "micro":
            await micro(nc, argv[2] if len(argv) > 2 else "")
        else:
            sys.exit(__doc__)
    finally:
        await nc.close()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv))
    except (KeyboardInterrupt, BrokenPipeError):
        pass
