# soft_timer: a periodic machine.Timer (soft timer) must keep firing while threads load the
# cores; reports how many ticks arrived against how many were due.


TEST = "soft_timer"
PERIOD_MS = 10
RUN_MS = 10000 if SOAK else 1000


def main():
    try:
        from machine import Timer
    except ImportError:
        return emit(TEST, "SKIP", "no machine.Timer on this board")
    t0 = time.ticks_ms()
    stop = [False]
    ticks = []

    def tick(_t):
        ticks.append(time.ticks_ms())

    def burn():
        x = 0
        while not stop[0]:
            x = (x + 1) & 0xFFFF

    if _thread:
        for _ in range(2):
            _thread.start_new_thread(burn, ())
    try:
        try:
            tim = Timer(-1)
        except (ValueError, TypeError):
            tim = Timer(0)
        tim.init(period=PERIOD_MS, mode=Timer.PERIODIC, callback=tick)
    except Exception as e:
        stop[0] = True
        return emit(TEST, "SKIP", "cannot start a soft timer: %r" % e)
    hold(RUN_MS)
    tim.deinit()
    stop[0] = True
    due = RUN_MS // PERIOD_MS
    got = len(ticks)
    gaps = [time.ticks_diff(ticks[i + 1], ticks[i]) for i in range(len(ticks) - 1)]
    m = dict(period_ms=PERIOD_MS, run_ms=RUN_MS, due=due, fired=got,
             max_gap_ms=max(gaps) if gaps else None, ms=elapsed_ms(t0))
    if got < due // 2:
        return emit(TEST, "FAIL", "timer fired %d of %d times" % (got, due), **m)
    emit(TEST, "PASS", "timer fired %d of %d times" % (got, due), **m)


main()
