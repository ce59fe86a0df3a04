/* The task walk that freertos_tasks_c_additions.h adds to FreeRTOS's tasks.c (see there). */
#ifndef MPFR_WALK_H
#define MPFR_WALK_H

#include "FreeRTOS.h"
#include "task.h"

/* Called once per task, in uxTaskGetSystemState() order, index 0..count-1, with the scheduler
 * suspended: it must not block. The TaskStatus_t has no stack high-water mark (0). */
typedef void (*mpfr_task_visit_t)(void *ctx, const TaskStatus_t *task, UBaseType_t index,
    UBaseType_t count);

/* Visits every task; returns how many were visited and sets *total to the run-time counter. */
UBaseType_t mpfr_task_walk(mpfr_task_visit_t visit, void *ctx, configRUN_TIME_COUNTER_TYPE *total);

#endif /* MPFR_WALK_H */
