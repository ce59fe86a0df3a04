# sleep_fairness: threads that sleep in a loop must all keep waking up while other threads burn
# CPU; reports each thread's wake-ups and the worst oversleep.


TEST = "sleep_fairness"
SLEEPERS = 4
BURNERS = 2
RUN_MS = 10000 if SOAK else 1000
NAP_MS = 5


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    stop = [False]
    wakes = [0] * SLEEPERS
    worst = [0] * SLEEPERS
    lk = _thread.allocate_lock()
    live = [0]

    def sleeper(i):
        with lk:
            live[0] += 1
        while not stop[0]:
            a = time.ticks_ms()
            time.sleep_ms(NAP_MS)
            over = time.ticks_diff(time.ticks_ms(), a) - NAP_MS
            if over > worst[i]:
                worst[i] = over
            wakes[i] += 1
        with lk:
            live[0] -= 1

    def burner():
        with lk:
            live[0] += 1
        x = 0
        while not stop[0]:
            x = (x * 13 + 1) & 0xFFFF
        with lk:
            live[0] -= 1

    for i in range(SLEEPERS):
        _thread.start_new_thread(sleeper, (i,))
    for _ in range(BURNERS):
        _thread.start_new_thread(burner, ())
    hold(RUN_MS)
    stop[0] = True
    ended = wait_until(lambda: live[0] == 0, 20000)
    due = RUN_MS // NAP_MS
    m = dict(sleepers=SLEEPERS, burners=BURNERS, nap_ms=NAP_MS, run_ms=RUN_MS, due=due,
             wakes=wakes, worst_oversleep_ms=max(worst), ms=elapsed_ms(t0))
    if not ended:
        return emit(TEST, "FAIL", "threads did not stop", **m)
    if min(wakes) == 0:
        return emit(TEST, "FAIL", "a sleeping thread never woke up (starved)", **m)
    if min(wakes) * 10 < due:
        return emit(TEST, "FAIL", "a sleeper woke only %d of %d times" % (min(wakes), due), **m)
    emit(TEST, "PASS", "every sleeper woke %d..%d of %d times" % (min(wakes), max(wakes), due), **m)


main()
