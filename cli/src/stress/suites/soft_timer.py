# soft_timer: a periodic machine.Timer (soft timer) must keep firing while threads load the
# cores; reports how many ticks arrived against how many were due.

# --- mpfr stress helper (the same block starts every built-in test) ---------------------------
import sys, time, gc
try:
    import _thread
except ImportError:
    _thread = None
LEVEL = globals().get("MPFR_LEVEL", "quick")
SEED = globals().get("MPFR_SEED", 1)
SOAK = LEVEL == "soak"
GIL = getattr(sys.implementation, "_thread", None)


def _js(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ",".join(_js(str(k)) + ":" + _js(v[k]) for k in v) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_js(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + s + '"'


def emit(test, verdict, detail="", **m):
    print("MPFR-RESULT " + _js({"test": test, "verdict": verdict, "detail": detail,
                                "level": LEVEL, "gil": GIL, "metrics": m}))


_beat = [time.ticks_ms()]


def beat():
    # A line now and then, so the runner's inactivity limit sees a live board.
    if time.ticks_diff(time.ticks_ms(), _beat[0]) >= 2000:
        _beat[0] = time.ticks_ms()
        print("MPFR-BEAT")


def wait_until(cond, ms):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            return False
        time.sleep_ms(2)
        beat()
    return True


def hold(ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        time.sleep_ms(min(100, max(1, ms - time.ticks_diff(time.ticks_ms(), t0))))
        beat()


def elapsed_ms(t0):
    return time.ticks_diff(time.ticks_ms(), t0)
# --- end of helper ---------------------------------------------------------------------------


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
