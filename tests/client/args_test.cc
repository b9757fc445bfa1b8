#include "client/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace classifier::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<Invocation> Parse(std::vector<std::string> argv, std::string env = "") {
  return ParseArgs(argv, env);
}

void ExpectUsageError(std::vector<std::string> argv, const std::string& message) {
  absl::StatusOr<Invocation> inv = Parse(argv);
  ASSERT_FALSE(inv.ok()) << "parsed: " << testing::PrintToString(argv);
  EXPECT_EQ(inv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inv.status().message(), HasSubstr(message));
}

TEST(ClientArgsTest, DefaultsAndEnvironment) {
  absl::StatusOr<Invocation> inv = Parse({"jobs"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->server, "127.0.0.1:50051");
  EXPECT_EQ(inv->command, "jobs");
  EXPECT_FALSE(inv->help);
  EXPECT_EQ(inv->timeout_seconds, 0);

  inv = Parse({"jobs"}, "server:1234");
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->server, "server:1234");

  inv = Parse({"--server", "flag:1", "jobs"}, "server:1234");
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->server, "flag:1");
}

TEST(ClientArgsTest, GlobalFlagsGoBeforeOrAfterTheCommand) {
  absl::StatusOr<Invocation> inv = Parse({"jobs", "--server=h:2", "--timeout", "2.5"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->server, "h:2");
  EXPECT_DOUBLE_EQ(inv->timeout_seconds, 2.5);
}

TEST(ClientArgsTest, TrainFlags) {
  absl::StatusOr<Invocation> inv =
      Parse({"train", "--dataset", "fashion-mnist", "--epochs=3", "--batch_size", "128",
             "--learning_rate", "1e-4", "--seed", "18446744073709551615", "--optimizer", "adam",
             "--progress_reports_per_epoch", "5", "--label_smoothing", "0.1", "--json",
             "--detach=false"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->String("dataset"), "fashion-mnist");
  EXPECT_EQ(inv->Int32("epochs"), 3);
  EXPECT_EQ(inv->Int32("batch_size"), 128);
  EXPECT_DOUBLE_EQ(inv->Double("learning_rate"), 1e-4);
  EXPECT_EQ(inv->Uint64("seed"), 18446744073709551615ull);
  EXPECT_EQ(inv->Int32("progress_reports_per_epoch"), 5);
  EXPECT_DOUBLE_EQ(inv->Double("label_smoothing"), 0.1);
  EXPECT_TRUE(inv->deprecations.empty());
  EXPECT_TRUE(inv->Bool("json"));
  EXPECT_FALSE(inv->Bool("detach"));
  EXPECT_TRUE(inv->Has("detach"));
  EXPECT_FALSE(inv->Has("optimizer_x"));
  EXPECT_EQ(inv->Int32("missing", 7), 7);
}

// Train flags are named as the TrainRequest's fields; the old spellings still work for one
// release, each with a deprecation line naming its replacement.
TEST(ClientArgsTest, OldFlagSpellingsAreAliasesWithADeprecationLine) {
  absl::StatusOr<Invocation> inv =
      Parse({"train", "--lr_step", "2", "--early_stopping=3", "--hflip", "--vflip", "--rotation",
             "10", "--progress_reports", "4", "--deploy"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Int32("lr_step_size"), 2);
  EXPECT_EQ(inv->Int32("early_stopping_patience"), 3);
  EXPECT_TRUE(inv->Bool("horizontal_flip"));
  EXPECT_TRUE(inv->Bool("vertical_flip"));
  EXPECT_DOUBLE_EQ(inv->Double("rotation_degrees"), 10);
  EXPECT_EQ(inv->Int32("progress_reports_per_epoch"), 4);
  EXPECT_TRUE(inv->Bool("deploy_when_done"));
  EXPECT_FALSE(inv->Has("lr_step"));
  ASSERT_EQ(inv->deprecations.size(), 7u);
  EXPECT_THAT(inv->deprecations[0], HasSubstr("--lr_step is deprecated"));
  EXPECT_THAT(inv->deprecations[0], HasSubstr("use --lr_step_size"));
  EXPECT_THAT(inv->deprecations[6], HasSubstr("use --deploy_when_done"));
}

TEST(ClientArgsTest, PositionalArguments) {
  absl::StatusOr<Invocation> inv = Parse({"predict", "a.png", "--top_k", "3", "b.jpg"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(inv->args, ElementsAre("a.png", "b.jpg"));
  EXPECT_EQ(inv->Int32("top_k"), 3);

  inv = Parse({"predict", "--", "--odd.png", "-x.png"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(inv->args, ElementsAre("--odd.png", "-x.png"));

  inv = Parse({"watch", "job-1", "--from", "5"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(inv->args, ElementsAre("job-1"));
  EXPECT_EQ(inv->Int64("from"), 5);
}

TEST(ClientArgsTest, Help) {
  absl::StatusOr<Invocation> inv = Parse({"--help"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command, "");

  inv = Parse({"train", "--help"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command, "train");

  inv = Parse({"help", "export"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command, "export");

  inv = Parse({"watch", "-h"});  // Help needs no JOB.
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
}

TEST(ClientArgsTest, UsageErrors) {
  ExpectUsageError({}, "no command given");
  ExpectUsageError({"fly"}, "unknown command 'fly'");
  ExpectUsageError({"train", "--epoch", "3"}, "unknown flag --epoch for 'train'");
  ExpectUsageError({"--epochs", "3", "train"}, "unknown flag --epochs before the command");
  ExpectUsageError({"train", "--epochs"}, "flag --epochs needs a value (N)");
  ExpectUsageError({"train", "--epochs", "ten"}, "invalid value 'ten' for --epochs");
  ExpectUsageError({"train", "--epochs", "99999999999"}, "invalid value");
  ExpectUsageError({"train", "--seed", "-1"}, "invalid value '-1' for --seed");
  ExpectUsageError({"train", "--learning_rate", "nan"}, "for --learning_rate: expected a number");
  ExpectUsageError({"train", "--json=maybe"}, "expected true or false");
  ExpectUsageError({"train", "-epochs", "3"}, "flags start with two dashes");
  ExpectUsageError({"train", "extra"}, "'train' takes no arguments, got 'extra'");
  ExpectUsageError({"watch"}, "'watch' takes JOB, got 0 arguments");
  ExpectUsageError({"job", "a", "b"}, "'job' takes JOB, got 2 arguments");
  ExpectUsageError({"predict"}, "'predict' takes FILE..., got 0 arguments");
  ExpectUsageError({"jobs", "--server="}, "--server must not be empty");
  ExpectUsageError({"jobs", "--timeout", "0"}, "--timeout must be");
}

TEST(ClientArgsTest, UsageListsEveryCommandAndItsFlags) {
  const std::string usage = Usage();
  for (const CommandSpec& command : Commands()) {
    EXPECT_THAT(usage, HasSubstr(std::string("  ") + std::string(command.name)));
    const std::string text = CommandUsage(command);
    for (const FlagSpec& flag : command.flags) {
      EXPECT_THAT(text, HasSubstr("--" + std::string(flag.name))) << command.name;
    }
  }
  EXPECT_THAT(usage, HasSubstr("--server HOST:PORT"));
  EXPECT_NE(FindCommand("export"), nullptr);
  EXPECT_EQ(FindCommand("nope"), nullptr);
}

}  // namespace
}  // namespace classifier::cli
