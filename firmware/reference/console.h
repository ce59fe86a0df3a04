/* What the console's commands share (main.c): output helpers, the registry wait, the workload's
 * workers; and the SMP commands in smp.c. */
#ifndef REF_CONSOLE_H
#define REF_CONSOLE_H

#include <stdint.h>

void out(const char *s);
void out_u(uint32_t v);
void out_hex(uint32_t v);
/* " key=value" */
void kv(const char *k, uint32_t v);
/* "RESULT <name> PASS|FAIL" */
void result(const char *name, int pass);
/* Waits until no registry thread is alive beyond `base`, polling; returns 1 on time. */
int wait_live(uint16_t base, uint32_t timeout_ms);

/* The workload's workers: names, and bit c set when a worker has run on core c. Entries 3 and 4
 * are pinned to core 0 and core 1 on two cores. */
extern const char *const worker_names[5];
extern volatile uint32_t worker_seen[5];

/* Two cores only (smp.c). */
void cmd_smp(uint32_t ticks);
void cmd_pingpong(uint32_t n);

#endif /* REF_CONSOLE_H */
