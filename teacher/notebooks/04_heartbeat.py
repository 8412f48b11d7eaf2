# Notebook 4: who is online after the server's diary of events.
def online(events):
    alive = set()
    for _time, kind, addr in events:
        if kind == "join":
            alive.add(addr)
        elif kind in ("quit", "expire"):
            alive.discard(addr)
    return alive
