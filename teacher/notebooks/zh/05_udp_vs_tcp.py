# 第 5 个笔记本：一串序号里有哪些丢失、迟到或重复。
def loss_report(received, sent):
    seen, late, duplicates, highest = set(), 0, 0, -1
    for seq in received:
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            late += 1  # 比它大的序号先到了
        highest = max(highest, seq)
    return {"lost": sent - len(seen), "late": late, "duplicates": duplicates}
