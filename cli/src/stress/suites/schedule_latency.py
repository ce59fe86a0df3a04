# schedule_latency: micropython.schedule() callbacks must run, promptly, while worker threads
# keep the cores busy (on FreeRTOS boards this is the service task's job).


TEST = "schedule_latency"
LOAD = 2
COUNT = 500 if SOAK else 60


def main():
    try:
        import micropython
        micropython.schedule
    except (ImportError, AttributeError):
        return emit(TEST, "SKIP", "no micropython.schedule")
    t0 = time.ticks_ms()
    stop = [False]
    lk = _thread.allocate_lock() if _thread else None
    running = [0]

    def burn():
        with lk:
            running[0] += 1
        x = 0
        while not stop[0]:
            x = (x * 31 + 7) & 0xFFFF
        with lk:
            running[0] -= 1

    if _thread:
        for _ in range(LOAD):
            _thread.start_new_thread(burn, ())
    lat = []

    def cb(t):
        lat.append(time.ticks_diff(time.ticks_us(), t))

    missed = 0
    try:
        for i in range(COUNT):
            want = len(lat) + 1
            while True:
                try:
                    micropython.schedule(cb, time.ticks_us())
                    break
                except RuntimeError:  # queue full: let it drain
                    time.sleep_ms(1)
            # A busy Python loop: pending callbacks run between bytecodes.
            t1 = time.ticks_ms()
            while len(lat) < want and time.ticks_diff(time.ticks_ms(), t1) < 2000:
                pass
            if len(lat) < want:
                missed += 1
                if missed > 3:
                    break
            time.sleep_ms(1)
            beat()
    finally:
        stop[0] = True
        if _thread:
            wait_until(lambda: running[0] == 0, 10000)
    if not lat:
        return emit(TEST, "FAIL", "no scheduled callback ever ran", missed=missed)
    s = sorted(lat)
    m = dict(load_threads=LOAD if _thread else 0, callbacks=len(lat), missed=missed,
             p50_us=s[len(s) // 2], p99_us=s[(len(s) * 99) // 100], max_us=s[-1],
             ms=elapsed_ms(t0))
    if missed:
        return emit(TEST, "FAIL", "%d callbacks waited over 2 s" % missed, **m)
    emit(TEST, "PASS", "%d callbacks, p50 %d us, max %d us" % (len(lat), m["p50_us"], m["max_us"]), **m)


main()
