# lock_starvation: threads contend for one lock in tight loops; every one of them must get it.
# Reports each thread's acquisitions and the fairness ratio (fewest / most).

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
