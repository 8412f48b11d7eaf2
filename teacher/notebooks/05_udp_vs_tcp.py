# Notebook 5: what was lost, late or duplicated in a list of sequence numbers.
def loss_report(received, sent):
    seen, late, duplicates, highest = set(), 0, 0, -1
    for seq in received:
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            late += 1  # a higher number arrived before this one
        highest = max(highest, seq)
    return {"lost": sent - len(seen), "late": late, "duplicates": duplicates}
