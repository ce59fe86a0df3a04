# lock_starvation: threads contend for one lock in tight loops; every one of them must get it.
# Reports each thread's acquisitions and the fairness ratio (fewest / most).


TEST = "lock_starvation"
THREADS = 4
RUN_MS = 10000 if SOAK else 1000


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    lk = _thread.allocate_lock()
    stop = [False]
    got = [0] * THREADS
    live = [0]
    meta = _thread.allocate_lock()

    def fight(i):
        with meta:
            live[0] += 1
        while not stop[0]:
            with lk:
                got[i] += 1
        with meta:
            live[0] -= 1

    for i in range(THREADS):
        _thread.start_new_thread(fight, (i,))
    hold(RUN_MS)
    stop[0] = True
    ended = wait_until(lambda: live[0] == 0, 20000)
    m = dict(threads=THREADS, run_ms=RUN_MS, acquisitions=got,
             fairness_pct=(100 * min(got)) // max(1, max(got)), ms=elapsed_ms(t0))
    if not ended:
        return emit(TEST, "FAIL", "threads did not stop (a lock never came back?)", **m)
    if min(got) == 0:
        return emit(TEST, "FAIL", "a thread never got the lock (starved)", **m)
    emit(TEST, "PASS", "every thread got the lock (%d..%d times)" % (min(got), max(got)), **m)


main()
