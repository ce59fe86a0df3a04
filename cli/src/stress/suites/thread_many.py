# thread_many: start threads that all stay alive until MemoryError/RuntimeError or a cap; the
# board must refuse cleanly (an exception, not a crash), and work again once they finish.

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


TEST = "thread_many"
CAP = 512 if SOAK else 128
STACK = 16 * 1024 if sys.platform == "linux" else 2048


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    try:
        old = _thread.stack_size(STACK)
    except Exception:
        old = None
    gate = _thread.allocate_lock()
    gate.acquire()
    lk = _thread.allocate_lock()
    state = [0, 0]  # started, finished

    def hold():
        with lk:
            state[0] += 1
        gate.acquire()
        gate.release()
        with lk:
            state[1] += 1

    n = 0
    why = "cap"
    try:
        while n < CAP:
            _thread.start_new_thread(hold, ())
            n += 1
    except (MemoryError, RuntimeError, OSError) as e:
        why = "%s: %s" % (type(e).__name__, e)
    finally:
        if old is not None:
            _thread.stack_size(old)
    started = wait_until(lambda: state[0] == n, 20000)
    gate.release()
    finished = wait_until(lambda: state[1] == n, 20000)
    m = dict(threads=n, cap=CAP, stack=STACK, stopped_by=why, ms=elapsed_ms(t0))
    if not (started and finished):
        return emit(TEST, "FAIL", "%d of %d threads ran, %d finished" % (state[0], n, state[1]), **m)
    gc.collect()
    ok = [0]

    def again():
        ok[0] = 1

    try:
        _thread.start_new_thread(again, ())
    except Exception as e:
        return emit(TEST, "FAIL", "cannot start a thread afterwards: %r" % e, **m)
    if not wait_until(lambda: ok[0], 10000):
        return emit(TEST, "FAIL", "a thread started afterwards never ran", **m)
    if n == 0:
        return emit(TEST, "FAIL", "not a single thread could start (%s)" % why, **m)
    emit(TEST, "PASS", "%d threads fitted (stopped by %s)" % (n, why), **m)


main()
