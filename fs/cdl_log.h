/* cdl_log: one line per event on stderr (or a file): time, role, level,
 * message. The level is checked before formatting. Thread-safe. */
#ifndef CDL_LOG_H
#define CDL_LOG_H

enum cdl_log_level { CDL_LOG_ERROR = 0, CDL_LOG_WARN, CDL_LOG_INFO, CDL_LOG_DEBUG };

extern int cdl_log_level_cur;

void cdl_log_init(const char *role, int level);
/* Parse "error", "warn", "info", "debug"; -1 if unknown. */
int cdl_log_level_parse(const char *s);
void cdl_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cdl_log(level, ...)                                                                        \
	do {                                                                                       \
		if ((level) <= cdl_log_level_cur)                                                  \
			cdl_log_write((level), __VA_ARGS__);                                       \
	} while (0)
#define cdl_err(...)   cdl_log(CDL_LOG_ERROR, __VA_ARGS__)
#define cdl_warn(...)  cdl_log(CDL_LOG_WARN, __VA_ARGS__)
#define cdl_info(...)  cdl_log(CDL_LOG_INFO, __VA_ARGS__)
#define cdl_debug(...) cdl_log(CDL_LOG_DEBUG, __VA_ARGS__)

#endif
