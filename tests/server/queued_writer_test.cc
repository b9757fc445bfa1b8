// QueuedWriter alone, as the reactor of a real streaming call on a loopback server: messages
// arrive in the order sent, each write starts only once the one before is done (the rest wait in
// the queue, or only the newest with Backlog::kLatest), the call finishes only after the queue
// is drained, and a client's cancel ends the call with the status the writer was given.
//
// The test holds each finished write before the writer hears of it (OnWriteDone), so "a write
// is in flight" is a state the test chooses, not a race it hopes to win.
#include "server/queued_writer.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "classifier/v1/classifier.grpc.pb.h"
#include "server/mutex.h"

namespace classifier {
namespace {

using Chunk = v1::WeightsChunk;
using Backlog = QueuedWriter<Chunk>::Backlog;

constexpr auto kDeadline = std::chrono::seconds(30);

class TestWriter;

// What the test sees of the one writer the server made for its call. Lock order: life_mu_, then
// the writer's own lock, then events_mu_ (OnFinish runs under the writer's lock).
class Probe {
 public:
  // Runs `use(writer)` while the writer exists, under the lock its destructor takes (as the
  // service's callers do): false once gRPC has deleted it.
  template <typename Use>
  bool WithWriter(Use use) {
    MutexLock lock(&life_mu_);
    if (writer_ == nullptr) return false;
    use(*writer_);
    return true;
  }

  void Attach(TestWriter* writer) {
    {
      MutexLock lock(&life_mu_);
      writer_ = writer;
    }
    MutexLock lock(&events_mu_);
    attached_ = true;
    changed_.SignalAll();
  }
  void Detach() {
    {
      MutexLock lock(&life_mu_);
      writer_ = nullptr;
    }
    MutexLock lock(&events_mu_);
    destroyed_ = true;
    changed_.SignalAll();
  }

  // From OnWriteDone: true when the test holds writes, and this one is held until ReleaseWrite.
  bool Hold(bool ok) {
    MutexLock lock(&events_mu_);
    if (!hold_writes_) return false;
    held_.push_back(ok);
    changed_.SignalAll();
    return true;
  }
  void HoldWrites() {
    MutexLock lock(&events_mu_);
    hold_writes_ = true;
  }
  // Lets the writer hear of the oldest held write (waiting for it first).
  void ReleaseWrite();
  // Stops holding writes and releases those held, so that a failed test's call can end.
  void ReleaseAll();

  void Cancelled() {
    MutexLock lock(&events_mu_);
    cancelled_ = true;
    changed_.SignalAll();
  }
  void Finished(const ::grpc::Status& status) {
    MutexLock lock(&events_mu_);
    finished_.push_back(status);
    changed_.SignalAll();
  }

  // Waits until `condition` holds (read under the events lock); false after kDeadline.
  template <typename Condition>
  bool WaitFor(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    MutexLock lock(&events_mu_);
    while (!condition()) {
      if (!changed_.WaitUntil(&events_mu_, deadline)) return condition();
    }
    return true;
  }
  bool WaitForWriter() {
    return WaitFor([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return attached_; });
  }
  bool WaitForHeld(size_t count) {
    return WaitFor([this, count]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return held_.size() >= count; });
  }
  bool WaitForFinish() {
    return WaitFor([this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return !finished_.empty(); });
  }
  bool WaitForCancel() {
    return WaitFor([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return cancelled_; });
  }
  bool WaitForDestroyed() {
    return WaitFor([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return destroyed_; });
  }

  size_t held() {
    MutexLock lock(&events_mu_);
    return held_.size();
  }
  std::vector<::grpc::Status> finished() {
    MutexLock lock(&events_mu_);
    return finished_;
  }

 private:
  Mutex life_mu_;
  TestWriter* writer_ ABSL_GUARDED_BY(life_mu_) = nullptr;

  Mutex events_mu_;
  CondVar changed_;
  bool attached_ ABSL_GUARDED_BY(events_mu_) = false;
  bool destroyed_ ABSL_GUARDED_BY(events_mu_) = false;
  bool hold_writes_ ABSL_GUARDED_BY(events_mu_) = false;
  std::deque<bool> held_ ABSL_GUARDED_BY(events_mu_);
  bool cancelled_ ABSL_GUARDED_BY(events_mu_) = false;
  std::vector<::grpc::Status> finished_ ABSL_GUARDED_BY(events_mu_);
};

const ::grpc::Status kOnCancel(::grpc::StatusCode::CANCELLED, "on cancel");
const ::grpc::Status kOnWriteFailure(::grpc::StatusCode::ABORTED, "on write failure");

class TestWriter : public QueuedWriter<Chunk> {
 public:
  TestWriter(Backlog backlog, Probe* probe)
      : QueuedWriter(backlog, kOnCancel, kOnWriteFailure), probe_(probe) {
    probe_->Attach(this);
  }
  ~TestWriter() override { probe_->Detach(); }

  void OnWriteDone(bool ok) override {
    if (!probe_->Hold(ok)) QueuedWriter::OnWriteDone(ok);
  }
  // Recorded once the writer has taken the cancel in: a write released after this sees it.
  void OnCancel() override {
    QueuedWriter::OnCancel();
    probe_->Cancelled();
  }
  // What gRPC's OnWriteDone would have done, called by the test (a thread of ours).
  void ReleaseWrite(bool ok) { QueuedWriter::OnWriteDone(ok); }

 private:
  void OnFinish(const ::grpc::Status& status) override { probe_->Finished(status); }

  Probe* const probe_;
};

void Probe::ReleaseAll() {
  std::deque<bool> held;
  {
    MutexLock lock(&events_mu_);
    hold_writes_ = false;
    held.swap(held_);
  }
  for (bool ok : held) WithWriter([ok](TestWriter& writer) { writer.ReleaseWrite(ok); });
}

void Probe::ReleaseWrite() {
  ASSERT_TRUE(WaitForHeld(1)) << "no write to release";
  bool ok;
  {
    MutexLock lock(&events_mu_);
    ok = held_.front();
    held_.pop_front();
  }
  WithWriter([ok](TestWriter& writer) { writer.ReleaseWrite(ok); });
}

// ExportWeights is the one method served: it answers with a TestWriter.
class WriterService : public v1::Classifier::CallbackService {
 public:
  WriterService(Backlog backlog, Probe* probe) : backlog_(backlog), probe_(probe) {}

  ::grpc::ServerWriteReactor<Chunk>* ExportWeights(
      ::grpc::CallbackServerContext* /*context*/,
      const v1::ExportWeightsRequest* /*request*/) override {
    return new TestWriter(backlog_, probe_);
  }

 private:
  const Backlog backlog_;
  Probe* const probe_;
};

Chunk Message(int64_t offset) {
  Chunk chunk;
  chunk.set_offset(offset);
  chunk.set_data(std::string(100, 'x'));
  return chunk;
}

class QueuedWriterTest : public ::testing::Test {
 protected:
  // Starts a server whose writers keep `backlog`, and one call to it; returns once the server
  // has made the call's writer.
  void StartCall(Backlog backlog, bool hold_writes = false) {
    if (hold_writes) probe_.HoldWrites();
    service_ = std::make_unique<WriterService>(backlog, &probe_);
    ::grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = v1::Classifier::NewStub(::grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                          ::grpc::InsecureChannelCredentials()));
    context_.set_deadline(std::chrono::system_clock::now() + 2 * kDeadline);
    reader_ = stub_->ExportWeights(&context_, v1::ExportWeightsRequest());
    ASSERT_TRUE(probe_.WaitForWriter());
  }

  void TearDown() override {
    probe_.ReleaseAll();  // Shutdown waits for every call to end.
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  void Send(int64_t offset) {
    probe_.WithWriter([offset](TestWriter& writer) { writer.Send(Message(offset)); });
  }
  void FinishWhenDrained(const ::grpc::Status& status) {
    probe_.WithWriter([&status](TestWriter& writer) { writer.FinishWhenDrained(status); });
  }
  // The offset of the next message the client receives; -1 when the stream has ended.
  int64_t Read() {
    Chunk chunk;
    return reader_->Read(&chunk) ? chunk.offset() : -1;
  }

  Probe probe_;
  std::unique_ptr<WriterService> service_;
  std::unique_ptr<::grpc::Server> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  ::grpc::ClientContext context_;
  std::unique_ptr<::grpc::ClientReader<Chunk>> reader_;
};

TEST_F(QueuedWriterTest, MessagesFromManyThreadsArriveEachInTheOrderItsThreadSent) {
  StartCall(Backlog::kEvery);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) Send(t * 1000 + i);
    });
  }
  for (std::thread& sender : senders) sender.join();
  FinishWhenDrained(::grpc::Status::OK);

  std::vector<int> next(kThreads, 0);
  int received = 0;
  for (int64_t offset = Read(); offset >= 0; offset = Read()) {
    const int thread = static_cast<int>(offset / 1000);
    ASSERT_LT(thread, kThreads);
    EXPECT_EQ(offset % 1000, next[thread]) << "thread " << thread << "'s messages out of order";
    next[thread] = static_cast<int>(offset % 1000) + 1;
    ++received;
  }
  EXPECT_EQ(received, kThreads * kPerThread);
  EXPECT_TRUE(reader_->Finish().ok());
  ASSERT_TRUE(probe_.WaitForDestroyed());
  EXPECT_EQ(probe_.finished().size(), 1u);
}

TEST_F(QueuedWriterTest, EachWriteStartsOnlyWhenThePreviousOneIsDone) {
  StartCall(Backlog::kEvery, /*hold_writes=*/true);
  for (int i = 0; i < 4; ++i) Send(i);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(probe_.WaitForHeld(1));
    // One write done and not yet heard of by the writer: none other started behind it.
    EXPECT_EQ(probe_.held(), 1u) << "message " << i;
    EXPECT_EQ(Read(), i);
    probe_.ReleaseWrite();
  }
  FinishWhenDrained(::grpc::Status::OK);
  EXPECT_EQ(Read(), -1);
  EXPECT_TRUE(reader_->Finish().ok());
}

TEST_F(QueuedWriterTest, TheLatestBacklogKeepsOnlyTheNewestWaitingMessage) {
  StartCall(Backlog::kLatest, /*hold_writes=*/true);
  Send(0);
  ASSERT_TRUE(probe_.WaitForHeld(1));
  for (int i = 1; i <= 5; ++i) Send(i);  // Wait behind 0; each replaces the one before.
  probe_.ReleaseWrite();
  EXPECT_EQ(Read(), 0);
  EXPECT_EQ(Read(), 5);
  ASSERT_TRUE(probe_.WaitForHeld(1));
  FinishWhenDrained(::grpc::Status::OK);
  EXPECT_TRUE(probe_.finished().empty()) << "finished with a write in flight";
  probe_.ReleaseWrite();
  EXPECT_EQ(Read(), -1);
  EXPECT_TRUE(reader_->Finish().ok());
}

TEST_F(QueuedWriterTest, FinishWaitsForTheQueueTakesTheLastStatusAndDropsLaterMessages) {
  StartCall(Backlog::kEvery, /*hold_writes=*/true);
  for (int i = 0; i < 3; ++i) Send(i);
  ASSERT_TRUE(probe_.WaitForHeld(1));
  FinishWhenDrained(::grpc::Status::OK);
  // A shutdown learnt of after the last message was queued replaces the status.
  const ::grpc::Status restart(::grpc::StatusCode::UNAVAILABLE, "the server restarts");
  FinishWhenDrained(restart);
  Send(3);  // After FinishWhenDrained: dropped.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(probe_.finished().empty()) << "finished with " << 3 - i << " messages to write";
    probe_.ReleaseWrite();
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Read(), i);
  EXPECT_EQ(Read(), -1);
  const ::grpc::Status status = reader_->Finish();
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "the server restarts");
  ASSERT_TRUE(probe_.WaitForDestroyed());
  ASSERT_EQ(probe_.finished().size(), 1u);
  EXPECT_EQ(probe_.finished()[0].error_message(), "the server restarts");
}

TEST_F(QueuedWriterTest, ACancelWithNoWriteInFlightEndsTheCallWithTheCancelStatus) {
  StartCall(Backlog::kEvery);
  context_.TryCancel();
  ASSERT_TRUE(probe_.WaitForFinish());
  EXPECT_EQ(probe_.finished()[0].error_code(), kOnCancel.error_code());
  EXPECT_EQ(probe_.finished()[0].error_message(), kOnCancel.error_message());
  ASSERT_TRUE(probe_.WaitForDestroyed()) << "gRPC never deleted the writer";
  EXPECT_FALSE(probe_.WithWriter([](TestWriter& writer) { writer.Send(Message(0)); }));
  EXPECT_EQ(reader_->Finish().error_code(), ::grpc::StatusCode::CANCELLED);
}

TEST_F(QueuedWriterTest, ACancelDuringAWriteEndsTheCallWhenTheWriteIsDone) {
  StartCall(Backlog::kEvery, /*hold_writes=*/true);
  Send(0);
  Send(1);
  ASSERT_TRUE(probe_.WaitForHeld(1));
  context_.TryCancel();
  ASSERT_TRUE(probe_.WaitForCancel());
  EXPECT_TRUE(probe_.finished().empty()) << "finished with a write in flight";
  Send(2);  // Queued, never written: the call ends first.
  probe_.ReleaseWrite();
  ASSERT_TRUE(probe_.WaitForFinish());
  EXPECT_EQ(probe_.finished()[0].error_message(), kOnWriteFailure.error_message());
  ASSERT_TRUE(probe_.WaitForDestroyed());
  EXPECT_EQ(probe_.held(), 0u) << "a write started after the cancel";
  EXPECT_EQ(probe_.finished().size(), 1u);
  EXPECT_EQ(reader_->Finish().error_code(), ::grpc::StatusCode::CANCELLED);
}

}  // namespace
}  // namespace classifier
