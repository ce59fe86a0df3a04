// The port part of the time module (included by extmod/modtime.c). There is no clock: the
// epoch is the moment of boot.
static mp_obj_t mp_time_time_get(void) {
    return mp_obj_new_float((mp_float_t)mp_hal_ticks_ms() / 1000);
}
