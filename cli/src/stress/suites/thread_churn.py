# thread_churn: start and finish threads in batches; the heap must come back to its baseline.
# The baseline is taken after a warm-up batch of the same size, because a port with a reaper
# (FreeRTOS) frees finished threads only on the next start: both measurements then hold the
# same number of not-yet-reaped threads.


TEST = "thread_churn"
BATCH = 16
ROUNDS = 200 if SOAK else 25


def batch(n):
    done = [0]
    lk = _thread.allocate_lock()

    def work(i):
        b = bytearray(64 + i)  # a little garbage per thread
        with lk:
            done[0] += 1

    for i in range(n):
        _thread.start_new_thread(work, (i,))
    return wait_until(lambda: done[0] == n, 10000)


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    if not batch(BATCH):
        return emit(TEST, "FAIL", "warm-up batch did not finish")
    gc.collect()
    base = gc.mem_free()
    low = base
    for r in range(ROUNDS):
        if not batch(BATCH):
            return emit(TEST, "FAIL", "round %d: threads did not finish" % r, round=r)
        beat()
        if r % 5 == 0:
            gc.collect()
            low = min(low, gc.mem_free())
    gc.collect()
    end = gc.mem_free()
    lost = base - end
    tol = max(2048, base // 50)
    m = dict(threads=BATCH * (ROUNDS + 1), baseline_free=base, final_free=end,
             lost_bytes=lost, tolerance_bytes=tol, lowest_free=low, ms=elapsed_ms(t0))
    if lost > tol:
        return emit(TEST, "FAIL", "heap not reclaimed: %d bytes lost (tolerance %d)" % (lost, tol), **m)
    emit(TEST, "PASS", "heap back to baseline after %d threads" % m["threads"], **m)


main()
