/*
 * floor-relay: the least work a user-space TCP proxy can do per request,
 * for scripts/bench's "floor" proxy.
 *
 * Usage: floor-relay LISTEN_PORT BACKEND_PORT
 *
 * It listens on 127.0.0.1:LISTEN_PORT and gives every client connection its
 * own connection to 127.0.0.1:BACKEND_PORT, dialled once when the client
 * connects. From then on it copies bytes both ways without looking at them:
 * one epoll thread, level-triggered, one recv(2) and one send(2) for each
 * chunk (the socket calls, which skip the VFS layer read(2) and write(2)
 * pass through), and no parsing, no pool, no timers, no logging. A keep-alive
 * request therefore costs it exactly what any proxy must pay the kernel
 * (read the request, write it upstream, read the response, write it back,
 * and a share of epoll_wait) and almost nothing else, so its CPU time per
 * request is a floor for the scenarios where the client keeps its
 * connection: no HTTP proxy on the same kernel can go far below it.
 *
 * It is not a proxy to use. It is only a floor where each client connection
 * is long-lived and responses are small: with "Connection: close" it dials
 * the backend once per request, which real proxies avoid by pooling, and
 * it moves large bodies in 16 KiB chunks, each a trip through epoll. So
 * scripts/bench runs it only with small keep-alive responses over plain
 * HTTP/1.1.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CHUNK = 16384, MAX_EVENTS = 256 };

/*
 * end is one side of a relayed pair. pending holds bytes read from the peer
 * that this side's socket would not yet take; while it is not empty the
 * peer is not read from, so memory per pair stays bounded.
 */
struct end {
	int fd;
	int closed;
	struct end *peer;
	struct end *next_dead;
	size_t off, len;
	char pending[CHUNK];
};

static int epfd;
static struct end *dead; /* freed after the current epoll batch */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void watch(struct end *e, int op, unsigned int events)
{
	struct epoll_event ev = { .events = events, .data.ptr = e };
	if (epoll_ctl(epfd, op, e->fd, &ev) < 0)
		die("epoll_ctl");
}

/*
 * rearm sets what e waits for: readable while its peer has nothing parked,
 * writable while it has.
 */
static void rearm(struct end *e)
{
	unsigned int events = 0;
	if (e->peer->len == 0)
		events |= EPOLLIN;
	if (e->len > 0)
		events |= EPOLLOUT;
	watch(e, EPOLL_CTL_MOD, events);
}

static void close_pair(struct end *e)
{
	struct end *ends[2] = { e, e->peer };
	for (int i = 0; i < 2; i++) {
		if (ends[i]->closed)
			continue;
		/* close(2) also drops the descriptor from the epoll set. */
		close(ends[i]->fd);
		ends[i]->closed = 1;
		ends[i]->next_dead = dead;
		dead = ends[i];
	}
}

/* forward copies what src's socket has to its peer, parking the rest. */
static void forward(struct end *src)
{
	struct end *dst = src->peer;
	char buf[CHUNK];
	ssize_t n = recv(src->fd, buf, sizeof buf, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_pair(src);
		return;
	}
	ssize_t w = send(dst->fd, buf, (size_t)n, MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EINTR) {
		close_pair(src);
		return;
	}
	if (w < 0)
		w = 0;
	if (w == n)
		return;
	memcpy(dst->pending, buf + w, (size_t)(n - w));
	dst->off = 0;
	dst->len = (size_t)(n - w);
	rearm(src);
	rearm(dst);
}

/* drain writes e's parked bytes and, once they are gone, reads its peer again. */
static void drain(struct end *e)
{
	ssize_t w = send(e->fd, e->pending + e->off, e->len - e->off, MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (w < 0) {
		close_pair(e);
		return;
	}
	e->off += (size_t)w;
	if (e->off < e->len)
		return;
	e->off = e->len = 0;
	rearm(e);
	rearm(e->peer);
}

static void accept_all(int lfd, int backend_port)
{
	struct sockaddr_in backend = loopback(backend_port);
	int one = 1;
	for (;;) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			die("accept4");
		}
		/*
		 * A blocking connect: on loopback the handshake completes inside
		 * the call, and it happens once per client connection.
		 */
		int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ufd < 0)
			die("socket");
		if (connect(ufd, (struct sockaddr *)&backend, sizeof backend) < 0) {
			perror("connect backend");
			close(ufd);
			close(cfd);
			continue;
		}
		/* As the proxies under test do, so no write waits for an ACK. */
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (set_nonblock(ufd) < 0)
			die("fcntl");
		struct end *c = calloc(1, sizeof *c), *u = calloc(1, sizeof *u);
		if (!c || !u)
			die("calloc");
		c->fd = cfd, u->fd = ufd;
		c->peer = u, u->peer = c;
		watch(c, EPOLL_CTL_ADD, EPOLLIN);
		watch(u, EPOLL_CTL_ADD, EPOLLIN);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT\n", argv[0]);
		return 2;
	}
	int listen_port = atoi(argv[1]), backend_port = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in addr = loopback(listen_port);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind");
	if (listen(lfd, 4096) < 0)
		die("listen");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
		die("epoll_ctl listener");

	struct epoll_event events[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct end *e = events[i].data.ptr;
			if (!e) {
				accept_all(lfd, backend_port);
				continue;
			}
			if (e->closed)
				continue;
			/* Level-triggered: whatever is not handled now comes back. */
			unsigned int ev = events[i].events;
			if (e->len > 0 && (ev & EPOLLOUT))
				drain(e);
			else if (e->peer->len == 0)
				forward(e);
			else if (ev & (EPOLLHUP | EPOLLERR))
				close_pair(e);
		}
		while (dead) {
			struct end *next = dead->next_dead;
			free(dead);
			dead = next;
		}
	}
}
