/* job_task: the task engine, run as a child process of the tasktracker
 * (`caudal-tasktracker --task DIR`, started in DIR as the job's user by
 * job_user_spawn; it never uses gRPC). It reads DIR/task.pb (a ChildTask)
 * and works in DIR:
 *
 *  - map: reads the split's lines on stdin (the tasktracker streams them
 *    from Caudal), runs the built-in or `exec:` mapper; with reduces > 0
 *    partitions, sorts, combines and spills into file.out + file.index
 *    (job_sort.h), else writes the records as text to `part`;
 *  - reduce: fetches its partition of every map's output over the shuffle
 *    protocol into `in`, merges the sorted runs, runs the built-in or
 *    `exec:` reducer and writes text to `part`.
 *
 * The tasktracker uploads `part` to Caudal. The outcome goes to
 * DIR/result.pb (a ChildResult); the exit status is JOB_TASK_OK,
 * JOB_TASK_FAILED or JOB_TASK_FETCH_FAILED. Single-threaded. */
#ifndef JOB_TASK_H
#define JOB_TASK_H

enum { JOB_TASK_OK = 0, JOB_TASK_FAILED = 1, JOB_TASK_FETCH_FAILED = 2 };

/* Run the task described in dir/task.pb; returns the exit status. */
int job_task_main(const char *dir);

#endif
