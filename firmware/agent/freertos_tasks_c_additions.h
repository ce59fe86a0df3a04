/* Included by FreeRTOS at the end of tasks.c when configINCLUDE_FREERTOS_TASK_C_ADDITIONS_H is 1
 * (the kernel's documented hook; this folder must be on the kernel's include path). It gives the
 * mpfr agent (MPFR_AGENT_TASK_WALK 1) a walk over every task, one TaskStatus_t at a time with the
 * scheduler suspended: no snapshot array, and no stack scan (the agent asks for those itself, one
 * task per sample), which is where uxTaskGetSystemState() spends about half of its time. */
#ifndef MPFR_TASKS_C_ADDITIONS_H
#define MPFR_TASKS_C_ADDITIONS_H

#include "mpfr_walk.h"

static UBaseType_t mpfr_walk_list(List_t *list, eTaskState state, UBaseType_t index,
    UBaseType_t count, mpfr_task_visit_t visit, void *ctx) {
    UBaseType_t n = 0;
    if (listCURRENT_LIST_LENGTH(list) == 0) {
        return 0;
    }
    const ListItem_t *end = listGET_END_MARKER(list);
    for (ListItem_t *it = listGET_HEAD_ENTRY(list); it != end && index + n < count;
         it = listGET_NEXT(it)) {
        TaskStatus_t st;
        vTaskGetInfo((TaskHandle_t)listGET_LIST_ITEM_OWNER(it), &st, pdFALSE, state);
        visit(ctx, &st, index + n, count);
        n++;
    }
    return n;
}

UBaseType_t mpfr_task_walk(mpfr_task_visit_t visit, void *ctx, configRUN_TIME_COUNTER_TYPE *total) {
    UBaseType_t n = 0;
    vTaskSuspendAll();
    {
        /* Same lists, same order as uxTaskGetSystemState(). */
        UBaseType_t count = uxCurrentNumberOfTasks;
        for (UBaseType_t q = configMAX_PRIORITIES; q > 0; q--) {
            n += mpfr_walk_list(&pxReadyTasksLists[q - 1], eReady, n, count, visit, ctx);
        }
        n += mpfr_walk_list((List_t *)pxDelayedTaskList, eBlocked, n, count, visit, ctx);
        n += mpfr_walk_list((List_t *)pxOverflowDelayedTaskList, eBlocked, n, count, visit, ctx);
#if INCLUDE_vTaskDelete == 1
        n += mpfr_walk_list(&xTasksWaitingTermination, eDeleted, n, count, visit, ctx);
#endif
#if INCLUDE_vTaskSuspend == 1
        n += mpfr_walk_list(&xSuspendedTaskList, eSuspended, n, count, visit, ctx);
#endif
#if configGENERATE_RUN_TIME_STATS == 1 && defined(portALT_GET_RUN_TIME_COUNTER_VALUE)
        portALT_GET_RUN_TIME_COUNTER_VALUE((*total));
#elif configGENERATE_RUN_TIME_STATS == 1
        *total = (configRUN_TIME_COUNTER_TYPE)portGET_RUN_TIME_COUNTER_VALUE();
#else
        *total = 0;
#endif
    }
    (void)xTaskResumeAll();
    return n;
}

#endif /* MPFR_TASKS_C_ADDITIONS_H */
