# gc_under_load: worker threads build, check and drop data while the main thread and the
# workers themselves run gc.collect(); no data may change under the collector's feet.

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


TEST = "gc_under_load"
THREADS = 4
ROUNDS = 400 if SOAK else 60


def main():
    if _thread is None:
        return emit(TEST, "SKIP", "no _thread module")
    t0 = time.ticks_ms()
    lk = _thread.allocate_lock()
    done = [0]
    bad = []
    rounds = [0]

    def work(t):
        try:
            keep = []
            for r in range(ROUNDS):
                seed = (t * 1000003 + r * 7919 + SEED) & 0xFFFF
                data = [bytearray((seed + i) & 0xFF for _ in range(16)) for i in range(8)]
                text = "t%d-r%d-" % (t, r) + "x" * (r % 40)
                keep.append((seed, data, text))
                if len(keep) > 4:
                    keep.pop(0)
                for s, d, x in keep:
                    for i in range(8):
                        if d[i][0] != (s + i) & 0xFF or d[i][15] != (s + i) & 0xFF:
                            bad.append("thread %d round %d: bytearray changed" % (t, r))
                            return
                    if not x.startswith("t%d-" % t):
                        bad.append("thread %d round %d: string changed" % (t, r))
                        return
                if r % 10 == t:
                    gc.collect()
                with lk:
                    rounds[0] += 1
        except Exception as e:
            bad.append("thread %d: %r" % (t, e))
        finally:
            with lk:
                done[0] += 1

    for t in range(THREADS):
        _thread.start_new_thread(work, (t,))
    collects = 0
    deadline = 120000 if SOAK else 30000
    while done[0] < THREADS and elapsed_ms(t0) < deadline:
        gc.collect()
        collects += 1
        time.sleep_ms(1)
        beat()
    m = dict(threads=THREADS, rounds=rounds[0], main_collects=collects, ms=elapsed_ms(t0))
    if done[0] < THREADS:
        return emit(TEST, "FAIL", "workers did not finish (%d of %d)" % (done[0], THREADS), **m)
    if bad:
        return emit(TEST, "FAIL", bad[0], **m)
    emit(TEST, "PASS", "%d rounds checked under %d collections" % (rounds[0], collects), **m)


main()
