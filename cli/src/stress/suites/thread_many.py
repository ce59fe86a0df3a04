# thread_many: start threads that all stay alive until MemoryError/RuntimeError or a cap; the
# board must refuse cleanly (an exception, not a crash), and work again once they finish.


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
    # Kept until the threads have taken the rest of the heap, then let go: the report below
    # allocates, and with the GIL off the threads still starting on the other core may take
    # whatever the refused one left.
    reserve = bytearray(4096)
    try:
        while n < CAP:
            _thread.start_new_thread(hold, ())
            n += 1
    except (MemoryError, RuntimeError, OSError) as e:
        reserve = None
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
