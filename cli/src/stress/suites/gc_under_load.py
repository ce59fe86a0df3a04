# gc_under_load: worker threads build, check and drop data while the main thread and the
# workers themselves run gc.collect(); no data may change under the collector's feet.


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
