# thread_churn: start and finish threads in batches; the heap must come back to its baseline.
# The baseline is taken after a warm-up batch of the same size, because a port with a reaper
# (FreeRTOS) frees finished threads only on the next start: both measurements then hold the
# same number of not-yet-reaped threads.

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
