# lock_exact: threads mutate a shared counter, list and dict under one lock; every update must
# be there exactly once, in each thread's order.


TEST = "lock_exact"
THREADS = 8 if SOAK else 4
# Sizes follow the free heap (a dict entry and a list slot per update); soak repeats the whole
# check instead of growing it.
ROUNDS = 10 if SOAK else 1
gc.collect()
ITERS = max(50, min(2000, gc.mem_free() // (4 * 64 * THREADS)))


def check():
    lk = _thread.allocate_lock()
    counter = [0]
    items = []
    table = {}
    done = [0]
    errors = []

    def work(t):
        try:
            for i in range(ITERS):
                with lk:
                    counter[0] += 1
                    items.append(t * ITERS + i)
                    table[t * ITERS + i] = t
                    table["n%d" % t] = table.get("n%d" % t, 0) + 1
        except Exception as e:
            errors.append(repr(e))
        with lk:
            done[0] += 1

    for t in range(THREADS):
        _thread.start_new_thread(work, (t,))
    if not wait_until(lambda: done[0] == THREADS, 60000):
        return ["threads did not finish (%d of %d)" % (done[0], THREADS)], 0
    want = THREADS * ITERS
    problems = []
    if errors:
        problems.append("exceptions in threads: " + errors[0])
    if counter[0] != want:
        problems.append("counter %d != %d" % (counter[0], want))
    if len(items) != want:
        problems.append("list has %d items, want %d" % (len(items), want))
    last = [-1] * THREADS
    for v in items:
        t = v // ITERS
        if v <= last[t]:
            problems.append("thread %d items out of order" % t)
            break
        last[t] = v
    for t in range(THREADS):
        if table.get("n%d" % t) != ITERS:
            problems.append("thread %d counted %r updates" % (t, table.get("n%d" % t)))
            break
    if len(table) != want + THREADS:
        problems.append("dict has %d keys, want %d" % (len(table), want + THREADS))
    return problems, counter[0]


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    total = 0
    for r in range(ROUNDS):
        problems, n = check()
        total += n
        m = dict(threads=THREADS, iterations=ITERS, rounds=r + 1, updates=total,
                 counter=n, ms=elapsed_ms(t0))
        if problems:
            return emit(TEST, "FAIL", "round %d: " % r + "; ".join(problems), **m)
        gc.collect()
        beat()
    emit(TEST, "PASS", "%d locked updates all exact" % total, **m)


main()
