// Reading the real server's Prometheus endpoint in tests: a plain HTTP GET and one sample.
#ifndef CLASSIFIER_TESTS_SERVER_METRICS_SCRAPE_H_
#define CLASSIFIER_TESTS_SERVER_METRICS_SCRAPE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <regex>
#include <string>

namespace classifier::testing {

// GET /metrics over a plain socket; the whole response, headers included ("" on failure).
inline std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

// The value of the sample whose name and labels are exactly `series`; -1 when absent.
inline double Sample(const std::string& text, const std::string& series) {
  const std::regex line("(^|\n)" +
                        std::regex_replace(series, std::regex(R"([{}\\.+*?()|^$\[\]])"), R"(\$&)") +
                        " ([^\n]+)");
  std::smatch match;
  if (!std::regex_search(text, match, line)) return -1;
  return std::stod(match[2]);
}

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_SERVER_METRICS_SCRAPE_H_
