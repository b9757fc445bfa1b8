#include "distributed/rank_environment.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

// Reads the environment `variables` hold.
absl::StatusOr<RankEnvironment> ReadFrom(const std::map<std::string, std::string>& variables) {
  return ReadRankEnvironment([&variables](const char* name) -> const char* {
    auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  });
}

// A torchrun-like environment, with `changes` applied (an empty value unsets).
absl::StatusOr<RankEnvironment> Read(std::map<std::string, std::string> changes = {}) {
  std::map<std::string, std::string> variables = {{"MASTER_ADDR", "10.0.0.1"},
                                                  {"MASTER_PORT", "29500"},
                                                  {"RANK", "1"},
                                                  {"WORLD_SIZE", "4"},
                                                  {"LOCAL_RANK", "1"}};
  for (const auto& [name, value] : changes) {
    if (value.empty()) {
      variables.erase(name);
    } else {
      variables[name] = value;
    }
  }
  return ReadFrom(variables);
}

TEST(RankEnvironmentTest, ReadsTorchrunsContract) {
  absl::StatusOr<RankEnvironment> environment = Read();
  ASSERT_TRUE(environment.ok()) << environment.status();
  EXPECT_EQ(environment->master_addr, "10.0.0.1");
  EXPECT_EQ(environment->master_port, 29500);
  EXPECT_EQ(environment->rank, 1);
  EXPECT_EQ(environment->world_size, 4);
  EXPECT_EQ(environment->local_rank, 1);
  EXPECT_FALSE(environment->use_agent_store);
  EXPECT_EQ(environment->restart_count, 0);
  EXPECT_EQ(environment->socket_interface, "");

  absl::StatusOr<RankEnvironment> agent = Read({{"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                {"TORCHELASTIC_RESTART_COUNT", "2"},
                                                {"GLOO_SOCKET_IFNAME", "eth1"},
                                                {"LOCAL_RANK", ""}});
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_TRUE(agent->use_agent_store);
  EXPECT_EQ(agent->restart_count, 2);
  EXPECT_EQ(agent->socket_interface, "eth1");
  EXPECT_EQ(agent->local_rank, 0);
}

TEST(RankEnvironmentTest, EveryBadValueIsInvalidArgumentNamingTheVariable) {
  const std::map<std::string, std::map<std::string, std::string>> cases = {
      {"MASTER_ADDR is not set", {{"MASTER_ADDR", ""}}},
      {"MASTER_PORT is not set", {{"MASTER_PORT", ""}}},
      {"MASTER_PORT is \"0\"", {{"MASTER_PORT", "0"}}},
      {"MASTER_PORT is \"70000\"", {{"MASTER_PORT", "70000"}}},
      {"RANK is not set", {{"RANK", ""}}},
      {"RANK is \"4\"; it must be an integer from 0 to 3", {{"RANK", "4"}}},
      {"RANK is \"-1\"", {{"RANK", "-1"}}},
      {"WORLD_SIZE is \"0\"; it must be an integer from 1 to 1024", {{"WORLD_SIZE", "0"}}},
      {"WORLD_SIZE is \"two\"", {{"WORLD_SIZE", "two"}}},
      {"WORLD_SIZE is \"100000\"", {{"WORLD_SIZE", "100000"}}},
      {"LOCAL_RANK is \"-2\"", {{"LOCAL_RANK", "-2"}}},
  };
  for (const auto& [message, changes] : cases) {
    absl::StatusOr<RankEnvironment> environment = Read(changes);
    EXPECT_EQ(environment.status().code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(std::string(environment.status().message()), HasSubstr(message));
  }
}

// What a launcher writes (the server, classifier-worker) is what a rank reads back.
TEST(RankEnvironmentTest, VariablesReadBackAsTheSameEnvironment) {
  RankEnvironment written;
  written.master_addr = "192.168.7.2";
  written.master_port = 40123;
  written.rank = 3;
  written.world_size = 5;
  written.local_rank = 2;
  written.socket_interface = "veth1";
  std::map<std::string, std::string> variables;
  for (const std::string& variable : RankEnvironmentVariables(written)) {
    const size_t equals = variable.find('=');
    ASSERT_NE(equals, std::string::npos) << variable;
    variables[variable.substr(0, equals)] = variable.substr(equals + 1);
  }
  absl::StatusOr<RankEnvironment> read = ReadFrom(variables);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->master_addr, written.master_addr);
  EXPECT_EQ(read->master_port, written.master_port);
  EXPECT_EQ(read->rank, written.rank);
  EXPECT_EQ(read->world_size, written.world_size);
  EXPECT_EQ(read->local_rank, written.local_rank);
  EXPECT_EQ(read->socket_interface, written.socket_interface);
  EXPECT_FALSE(read->use_agent_store);
  // No interface named: none set, so Gloo chooses by address.
  written.socket_interface.clear();
  for (const std::string& variable : RankEnvironmentVariables(written)) {
    EXPECT_THAT(variable, ::testing::Not(HasSubstr("GLOO_SOCKET_IFNAME")));
  }
}

}  // namespace
}  // namespace classifier
