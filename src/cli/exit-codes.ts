/** Exit codes of every command: 0 clean stop / success, 1 fatal error or a problem found, 2 bad config or usage. */
export const EXIT_OK = 0;
export const EXIT_FATAL = 1;
export const EXIT_USAGE = 2;
