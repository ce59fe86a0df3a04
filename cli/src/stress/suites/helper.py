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
