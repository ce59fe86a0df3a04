/* What the agent, the service task and the thread registry need from the FreeRTOS port, with
 * defaults that any port can override before including this header. ESP-IDF (ESP_PLATFORM)
 * differs from the plain kernel in three ways handled here: its headers live under
 * `freertos/`, its ISR check is xPortInIsrContext(), and its critical sections take a
 * spinlock argument. */
#ifndef MPFR_PORT_H
#define MPFR_PORT_H

#ifdef ESP_PLATFORM
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#define MPFR_PORT_ESP_IDF 1
#else
#include "FreeRTOS.h"
#include "task.h"
#define MPFR_PORT_ESP_IDF 0
#endif

/* True in interrupt context. Ports without xPortIsInsideInterrupt() must define it. */
#ifndef MPFR_IN_ISR
#if MPFR_PORT_ESP_IDF
#define MPFR_IN_ISR() (xPortInIsrContext() != 0)
#else
#define MPFR_IN_ISR() (xPortIsInsideInterrupt() == pdTRUE)
#endif
#endif

/* A free-running timestamp for latencies, in MPFR_RUNTIME_HZ units. */
#ifndef MPFR_TIMESTAMP
#if configGENERATE_RUN_TIME_STATS == 1 && defined(portGET_RUN_TIME_COUNTER_VALUE)
#define MPFR_TIMESTAMP() ((uint32_t)portGET_RUN_TIME_COUNTER_VALUE())
#else
#define MPFR_TIMESTAMP() ((uint32_t)xTaskGetTickCount())
#undef MPFR_RUNTIME_HZ
#define MPFR_RUNTIME_HZ configTICK_RATE_HZ
#endif
#endif

#ifndef MPFR_RUNTIME_HZ
#define MPFR_RUNTIME_HZ configTICK_RATE_HZ
#endif

/* Which heap figures the port's heap can give. xPortGetFreeHeapSize(): every kernel heap but
 * heap_3, and ESP-IDF; xPortGetMinimumEverFreeHeapSize(): heap_4, heap_5 and ESP-IDF only. A
 * firmware whose heap lacks one (heap_1/2 for the minimum; heap_3 or a port's own allocator for
 * both) sets the switch to 0 (mpfr_config.h can), and the figure is reported as unknown. */
#ifndef MPFR_AGENT_HEAP_STATS
#define MPFR_AGENT_HEAP_STATS (configSUPPORT_DYNAMIC_ALLOCATION == 1)
#endif
#ifndef MPFR_AGENT_HEAP_MIN_FREE
#define MPFR_AGENT_HEAP_MIN_FREE MPFR_AGENT_HEAP_STATS
#endif
/* vPortGetHeapStats(): heap_4 and heap_5 only (not ESP-IDF). It gives the free and minimum
 * figures too, and the count of allocations that tells a heap never used from an exhausted one. */
#ifndef MPFR_AGENT_HEAP_ALLOCS
#define MPFR_AGENT_HEAP_ALLOCS (MPFR_AGENT_HEAP_MIN_FREE && !MPFR_PORT_ESP_IDF)
#endif

/* A short critical section usable from task and interrupt context alike, on one core or
 * several (the kernel's critical section holds its SMP locks; IDF's holds this spinlock). */
typedef UBaseType_t mpfr_lock_t;

#if MPFR_PORT_ESP_IDF
extern portMUX_TYPE mpfr_port_mux;
#define MPFR_PORT_MUX_DEFINE portMUX_TYPE mpfr_port_mux = portMUX_INITIALIZER_UNLOCKED;

static inline mpfr_lock_t mpfr_lock(void) {
    if (MPFR_IN_ISR()) {
        portENTER_CRITICAL_ISR(&mpfr_port_mux);
    } else {
        portENTER_CRITICAL(&mpfr_port_mux);
    }
    return 0;
}

static inline void mpfr_unlock(mpfr_lock_t s) {
    (void)s;
    if (MPFR_IN_ISR()) {
        portEXIT_CRITICAL_ISR(&mpfr_port_mux);
    } else {
        portEXIT_CRITICAL(&mpfr_port_mux);
    }
}
#else
#define MPFR_PORT_MUX_DEFINE

static inline mpfr_lock_t mpfr_lock(void) {
    if (MPFR_IN_ISR()) {
        return taskENTER_CRITICAL_FROM_ISR();
    }
    taskENTER_CRITICAL();
    return 0;
}

static inline void mpfr_unlock(mpfr_lock_t s) {
    if (MPFR_IN_ISR()) {
        taskEXIT_CRITICAL_FROM_ISR(s);
    } else {
        taskEXIT_CRITICAL();
    }
}
#endif

#endif /* MPFR_PORT_H */
