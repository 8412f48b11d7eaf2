# 第 4 个笔记本：根据服务器端的事件日志，算出谁在线。
def online(events):
    alive = set()
    for _time, kind, addr in events:
        if kind == "join":
            alive.add(addr)
        elif kind in ("quit", "expire"):
            alive.discard(addr)
    return alive
