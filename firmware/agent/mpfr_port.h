/* What the agent, the service task and the thread registry need from the FreeRTOS port, with
 * defaults that any port can override before including this header. */
#ifndef MPFR_PORT_H
#define MPFR_PORT_H

#include "FreeRTOS.h"
#include "task.h"

/* True in interrupt context. Ports without xPortIsInsideInterrupt() must define it. */
#ifndef MPFR_IN_ISR
#define MPFR_IN_ISR() (xPortIsInsideInterrupt() == pdTRUE)
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

/* A short critical section usable from task and interrupt context alike. */
typedef UBaseType_t mpfr_lock_t;

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

#endif /* MPFR_PORT_H */
