#include "host/serve/http_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include "models/common/error.h"

namespace ph::serve {

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// A slice of every wait: how soon a stopping server notices, at most.
constexpr std::chrono::milliseconds kPollSlice{100};
constexpr size_t kHeaderLimit = 16 * 1024;
// After an answer sent without reading the body (413), what is still read and thrown
// away so that closing does not reset the connection before the client reads the answer.
constexpr std::chrono::milliseconds kLingerTime{1000};

// The socket as Beast's SyncReadStream / SyncWriteStream, with a deadline on every read
// and write: asio's blocking calls wait forever (SO_RCVTIMEO does not help them: asio
// polls again on EAGAIN), so each call first polls the socket until the deadline.
class TimedStream {
 public:
  TimedStream(tcp::socket& socket, const std::atomic<bool>& stopping)
      : socket_(socket), stopping_(stopping) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  // While waiting for a request, a stopping server ends the read (the connection closes).
  void set_abort_on_stop(bool abort) { abort_on_stop_ = abort; }

  template <class Buffers>
  size_t read_some(const Buffers& buffers, error_code& ec) {
    if (!wait(POLLIN, ec)) return 0;
    return socket_.read_some(buffers, ec);
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers, error_code& ec) {
    if (!wait(POLLOUT, ec)) return 0;
    return socket_.write_some(buffers, ec);
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  bool wait(short events, error_code& ec) {
    pollfd p{socket_.native_handle(), events, 0};
    for (;;) {
      if (abort_on_stop_ && stopping_) {
        ec = net::error::operation_aborted;
        return false;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) {
        ec = net::error::timed_out;
        return false;
      }
      const int r = ::poll(&p, 1, (int)std::min(left, kPollSlice).count());
      if (r > 0) return true;  // ready, or an error the read/write then reports
      if (r < 0 && errno != EINTR) {
        ec = error_code(errno, boost::system::system_category());
        return false;
      }
    }
  }

  tcp::socket& socket_;
  const std::atomic<bool>& stopping_;
  Clock::time_point deadline_ = Clock::now();
  bool abort_on_stop_ = false;
};

class Exchange : public HttpExchange {
 public:
  Exchange(TimedStream& stream, tcp::socket& socket, const HttpRequest& request, std::string remote,
           std::chrono::milliseconds io_timeout)
      : stream_(stream),
        socket_(socket),
        request_(request),
        remote_(std::move(remote)),
        io_timeout_(io_timeout) {}

  const HttpRequest& request() const override { return request_; }
  const std::string& remote() const override { return remote_; }
  int status() const override { return status_; }
  size_t bytes_sent() const override { return bytes_; }
  bool answered() const { return status_ != 0; }
  bool broken() const { return broken_; }

  bool respond(int status, const std::string& content_type, const std::string& body,
               const HttpHeaders& headers) override {
    http::response<http::string_body> res(static_cast<http::status>(status), request_.version());
    fill_headers(res, content_type, headers);
    res.keep_alive(request_.keep_alive());
    res.body() = body;
    res.prepare_payload();
    status_ = status;
    bytes_ = body.size();
    return write([&](error_code& ec) { http::write(stream_, res, ec); });
  }

  bool start_stream(int status, const std::string& content_type) override {
    http::response<http::empty_body> res(static_cast<http::status>(status), request_.version());
    fill_headers(res, content_type, {{"Cache-Control", "no-cache"}});
    res.keep_alive(request_.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr(res);
    status_ = status;
    return write([&](error_code& ec) { http::write_header(stream_, sr, ec); });
  }

  bool send_chunk(const std::string& data) override {
    if (data.empty()) return !broken_;  // an empty chunk would end the body
    bytes_ += data.size();
    return write(
        [&](error_code& ec) { net::write(stream_, http::make_chunk(net::buffer(data)), ec); });
  }

  bool end_stream(const std::string& last_data) override {
    if (!send_chunk(last_data)) return false;
    return write([&](error_code& ec) { net::write(stream_, http::make_chunk_last(), ec); });
  }

  bool client_gone() override {
    if (broken_) return true;
    pollfd p{socket_.native_handle(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) broken_ = true;
    return broken_;
  }

 private:
  template <class Response>
  void fill_headers(Response& res, const std::string& content_type, const HttpHeaders& headers) {
    res.set(http::field::server, "prompthost");
    res.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) res.set(name, value);
  }

  template <class Write>
  bool write(Write&& run) {
    if (broken_) return false;
    stream_.set_deadline(Clock::now() + io_timeout_);
    error_code ec;
    run(ec);
    if (ec) broken_ = true;
    return !broken_;
  }

  TimedStream& stream_;
  tcp::socket& socket_;
  const HttpRequest& request_;
  std::string remote_;
  std::chrono::milliseconds io_timeout_;
  int status_ = 0;
  size_t bytes_ = 0;
  bool broken_ = false;
};

std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  const tcp::endpoint e = socket.remote_endpoint(ec);
  if (ec) return "?";
  return e.address().to_string() + ":" + std::to_string(e.port());
}

// An answer of the HTTP layer itself, in the API's error format.
std::string error_json(const std::string& message, const std::string& type,
                       const std::string& code) {
  const nlohmann::json error = {{"message", message},
                                {"type", type},
                                {"param", nullptr},
                                {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}};
  return nlohmann::json{{"error", error}}.dump();
}

// A short answer on a connection whose request was not (fully) read, then the close.
// What the client still sends is read and dropped for up to `linger` (0: only what has
// arrived), so that closing does not reset the connection before it reads the answer.
void refuse(tcp::socket& socket, TimedStream& stream, int status, const std::string& message,
            std::chrono::milliseconds linger) {
  http::response<http::string_body> res(static_cast<http::status>(status), 11);
  res.set(http::field::server, "prompthost");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = message;
  res.prepare_payload();
  error_code ec;
  stream.set_deadline(Clock::now() + kLingerTime);
  http::write(stream, res, ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  char sink[4096];
  stream.set_deadline(Clock::now() + linger);
  if (linger.count() > 0)
    while (!ec) stream.read_some(net::buffer(sink), ec);  // until EOF or the linger time
  else
    while (!ec && socket.available(ec) > 0) socket.read_some(net::buffer(sink), ec);
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  HttpRefusalLog refusal_log;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::atomic<bool> stopping{false};
  std::thread accept_thread;
  int port = 0;
  mutable std::mutex mutex;
  std::condition_variable connections_done;
  int connections = 0;

  void accept_loop();
  void serve(tcp::socket socket);
  void connection_ended() {
    std::lock_guard<std::mutex> lock(mutex);
    --connections;
    connections_done.notify_all();
  }
};

void HttpServer::Impl::accept_loop() {
  pollfd p{acceptor.native_handle(), POLLIN, 0};
  while (!stopping) {
    if (::poll(&p, 1, (int)kPollSlice.count()) <= 0) continue;
    tcp::socket socket(io);
    error_code ec;
    acceptor.accept(socket, ec);
    if (ec) continue;
    bool room = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      room = connections < options.max_connections;
      if (room) ++connections;
    }
    if (!room) {
      TimedStream stream(socket, stopping);
      // On the accepting thread: no waiting for the client here.
      refuse(socket, stream, 503,
             error_json("too many connections: try again later", "server_error",
                        "too_many_connections"),
             std::chrono::milliseconds(0));
      if (refusal_log) refusal_log(endpoint_text(socket), 503, "too many connections");
      continue;
    }
    std::thread([this, s = std::move(socket)]() mutable {
      serve(std::move(s));
      connection_ended();
    }).detach();
  }
}

void HttpServer::Impl::serve(tcp::socket socket) {
  const std::string remote = endpoint_text(socket);
  TimedStream stream(socket, stopping);
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(kHeaderLimit);
    stream.set_deadline(Clock::now() + options.io_timeout);
    stream.set_abort_on_stop(buffer.size() == 0);
    error_code ec;
    http::read_header(stream, buffer, parser, ec);
    if (!ec && parser.get()[http::field::expect] == "100-continue" &&
        !(parser.content_length() && *parser.content_length() > options.max_body_bytes)) {
      http::response<http::empty_body> go_on(http::status::continue_, 11);
      http::write(stream, go_on, ec);
    }
    stream.set_abort_on_stop(false);
    if (!ec) http::read(stream, buffer, parser, ec);
    if (ec == http::error::body_limit) {
      refuse(socket, stream, 413,
             error_json("the request body is larger than the server's limit of " +
                            std::to_string(options.max_body_bytes) + " bytes (--max-body-bytes)",
                        "invalid_request_error", "request_too_large"),
             kLingerTime);
      if (refusal_log) refusal_log(remote, 413, "body over --max-body-bytes");
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      refuse(socket, stream, 400,
             error_json("malformed HTTP request: " + ec.message(), "invalid_request_error", ""),
             kLingerTime);
      if (refusal_log) refusal_log(remote, 400, "malformed HTTP request: " + ec.message());
      return;
    }
    if (ec) break;  // closed, timed out, stopping
    const HttpRequest request = parser.release();
    Exchange exchange(stream, socket, request, remote, options.io_timeout);
    handler(exchange);
    if (!exchange.answered() && !exchange.client_gone())  // a handler bug: say so
      exchange.respond(500, "application/json",
                       error_json("the request was not answered", "server_error", ""), {});
    if (exchange.broken() || !request.keep_alive() || stopping) break;
  }
  error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, HttpRefusalLog refusal_log)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  impl_->refusal_log = std::move(refusal_log);
  const std::string where = impl_->options.host + ":" + std::to_string(impl_->options.port);
  error_code ec;
  const net::ip::address address = net::ip::make_address(impl_->options.host, ec);
  if (ec)
    throw Error("--host " + impl_->options.host + ": not an IP address (" + ec.message() + ")");
  const tcp::endpoint endpoint(address, (unsigned short)impl_->options.port);
  tcp::acceptor& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw Error("cannot listen on " + where + ": " + ec.message());
  impl_->port = a.local_endpoint().port();
  impl_->accept_thread = std::thread([impl = impl_.get()] { impl->accept_loop(); });
}

HttpServer::~HttpServer() {
  stop();
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->connections_done.wait(lock, [&] { return impl_->connections == 0; });
}

int HttpServer::port() const {
  return impl_->port;
}

void HttpServer::stop() {
  impl_->stopping = true;
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  error_code ec;
  impl_->acceptor.close(ec);
}

bool HttpServer::wait_connections(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  return impl_->connections_done.wait_for(lock, timeout, [&] { return impl_->connections == 0; });
}

int HttpServer::open_connections() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->connections;
}

}  // namespace ph::serve
