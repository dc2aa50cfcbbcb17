/*
 * Hosts librdkafka's mock Kafka cluster (the one kcat starts with test.mock.num.brokers) with two
 * things kcat cannot do, for the broker-loss and dead-letter tests (test/support/kafka.ts):
 *  - fixed ports: KAFKA_MOCK_PORTS="p1,p2,p3" makes the brokers listen on those ports (the mock
 *    binds port 0; bind() below hands out the listed ports in order, with SO_REUSEADDR), so a
 *    cluster killed with SIGKILL can be started again where the daemon expects it;
 *  - injected broker errors: the stdin line "error <apiKey> <errorCode>" makes the next request of
 *    that API fail with that Kafka error code (rd_kafka_mock_push_request_errors).
 * Prints "bootstrap <host:port,...>" once ready and "ok" after each command; exits when stdin closes.
 * Built by the test launcher with the system C compiler against Debian's librdkafka1 (no headers
 * needed: the few declarations are below, as in rdkafka.h and rdkafka_mock.h of librdkafka 2.x).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;
rd_kafka_conf_t *rd_kafka_conf_new(void);
int rd_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t size);
rd_kafka_t *rd_kafka_new(int type, rd_kafka_conf_t *conf, char *errstr, size_t size);
rd_kafka_mock_cluster_t *rd_kafka_mock_cluster_new(rd_kafka_t *rk, int broker_cnt);
const char *rd_kafka_mock_cluster_bootstraps(const rd_kafka_mock_cluster_t *mcluster);
void rd_kafka_mock_push_request_errors(rd_kafka_mock_cluster_t *mcluster, int16_t api_key, size_t cnt, ...);

static char *ports;

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real_bind)(int, const struct sockaddr *, socklen_t);
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (ports && *ports && addr->sa_family == AF_INET && ((const struct sockaddr_in *)addr)->sin_port == 0) {
    struct sockaddr_in fixed = *(const struct sockaddr_in *)addr;
    fixed.sin_port = htons((uint16_t)strtol(ports, &ports, 10));
    if (*ports == ',') ports++;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return real_bind(fd, (const struct sockaddr *)&fixed, sizeof fixed);
  }
  return real_bind(fd, addr, len);
}

int main(int argc, char **argv) {
  char errstr[512];
  int brokers = argc > 1 ? atoi(argv[1]) : 3;
  ports = getenv("KAFKA_MOCK_PORTS");
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t *rk = rd_kafka_new(0 /* RD_KAFKA_PRODUCER */, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mcluster) {
    fprintf(stderr, "cannot create the mock cluster (ports %s in use?)\n", getenv("KAFKA_MOCK_PORTS"));
    return 1;
  }
  printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
  fflush(stdout);
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    int api_key, code;
    if (sscanf(line, "error %d %d", &api_key, &code) == 2) rd_kafka_mock_push_request_errors(mcluster, (int16_t)api_key, 1, code);
    printf("ok\n");
    fflush(stdout);
  }
  return 0;
}
