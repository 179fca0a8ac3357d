/*
 * crash.h - kvd's crash report: a fatal signal writes what happened and
 * a backtrace to the log before kvd dies of it.
 */
#ifndef KVD_CRASH_H
#define KVD_CRASH_H

/* Installs the report for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT
 * (a failed assertion in kvd or in a library it uses). Not in sanitizer
 * builds, whose own reports say more. Call once, early in main(). */
void kvd_crash_install(void);

#endif
