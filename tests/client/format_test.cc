#include "client/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace classifier::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ClientFormatTest, Durations) {
  EXPECT_EQ(FormatDuration(0), "0.0s");
  EXPECT_EQ(FormatDuration(4.14), "4.1s");
  EXPECT_EQ(FormatDuration(125), "2m05s");
  EXPECT_EQ(FormatDuration(3600 + 125), "1h02m");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(ClientFormatTest, Percent) {
  EXPECT_EQ(FormatPercent(0.97851), "97.85%");
  EXPECT_EQ(FormatPercent(1), "100.00%");
  EXPECT_EQ(FormatPercent(0), "0.00%");
}

TEST(ClientFormatTest, ProgressBar) {
  EXPECT_EQ(ProgressBar(0, 4), "|    |");
  EXPECT_EQ(ProgressBar(1, 4), "|████|");
  EXPECT_EQ(ProgressBar(0.5, 4), "|██  |");
  EXPECT_EQ(ProgressBar(0.5625, 4), "|██▎ |");  // 2.25 cells: a quarter block.
  EXPECT_EQ(ProgressBar(2.0, 4), "|████|");     // Clamped.
  EXPECT_EQ(ProgressBar(-1, 4), "|    |");
  EXPECT_EQ(ProgressBar(0.45), "|█████████           |");
}

TEST(ClientFormatTest, EpochLine) {
  v1::JobEvent::EpochEnd epoch;
  epoch.set_epoch(3);
  epoch.set_epochs(10);
  epoch.set_train_loss(0.07123);
  epoch.set_train_accuracy(0.97851);
  epoch.set_images_per_second(18234.4);
  epoch.set_elapsed_seconds(4.12);
  epoch.set_eta_seconds(9.6);
  EXPECT_EQ(EpochLine(epoch),
            "epoch 3/10 |████████████████████| 100% loss 0.0712 acc 97.85% 18234 img/s "
            "elapsed 4.1s eta 9.6s");
  epoch.set_validation_loss(0.065);
  epoch.set_validation_accuracy(0.9802);
  EXPECT_EQ(EpochLine(epoch),
            "epoch 3/10 |████████████████████| 100% loss 0.0712 acc 97.85% val_loss 0.0650 "
            "val_acc 98.02% 18234 img/s elapsed 4.1s eta 9.6s");
}

TEST(ClientFormatTest, ProgressLine) {
  v1::JobEvent::Progress progress;
  progress.set_epoch(3);
  progress.set_epochs(10);
  progress.set_batch(450);
  progress.set_batches(1000);
  progress.set_train_loss(0.0712);
  progress.set_train_accuracy(0.9785);
  progress.set_images_per_second(18234);
  EXPECT_EQ(ProgressLine(progress),
            "epoch 3/10 |█████████           |  45% 450/1000 loss 0.0712 acc 97.85% 18234 img/s");
  progress.set_batches(0);  // Never divides by zero.
  EXPECT_THAT(ProgressLine(progress), HasSubstr("|                    |   0%"));
}

TEST(ClientFormatTest, Table) {
  EXPECT_EQ(FormatTable({"A", "LONG HEADER", "C"}, {{"x", "y", "zz"}, {"wide value", "", "c"}}),
            "A           LONG HEADER  C\n"
            "x           y            zz\n"
            "wide value               c\n");
}

TEST(ClientFormatTest, JobsTable) {
  v1::ListJobsResponse jobs;
  v1::Job* done = jobs.add_jobs();
  done->set_job_id("job-1");
  done->set_state(v1::JOB_STATE_SUCCEEDED);
  done->mutable_request()->set_dataset("mnist");
  done->mutable_latest_epoch()->set_epoch(2);
  done->mutable_latest_epoch()->set_epochs(2);
  done->set_model_id("model-1");
  done->mutable_test_metrics()->set_accuracy(0.9891);
  done->mutable_test_metrics()->set_count(10000);
  v1::Job* queued = jobs.add_jobs();
  queued->set_job_id("job-2");
  queued->set_state(v1::JOB_STATE_QUEUED);
  queued->mutable_request()->set_dataset("fashion-mnist");
  queued->mutable_request()->set_epochs(5);
  v1::Job* defaults = jobs.add_jobs();
  defaults->set_job_id("job-3");
  defaults->set_state(v1::JOB_STATE_RUNNING);
  EXPECT_EQ(JobsTable(jobs),
            "JOB ID  STATE      DATASET        EPOCHS  PROGRESS  MODEL ID  TEST ACC\n"
            "job-1   succeeded  mnist          2       2/2       model-1   98.91%\n"
            "job-2   queued     fashion-mnist  5       0/5       -         -\n"
            "job-3   running    -              -       -         -         -\n");
  EXPECT_EQ(JobsTable(v1::ListJobsResponse()),
            "JOB ID  STATE  DATASET  EPOCHS  PROGRESS  MODEL ID  TEST ACC\n");
}

TEST(ClientFormatTest, JobDetails) {
  v1::Job job;
  job.set_job_id("job-1");
  job.set_state(v1::JOB_STATE_FAILED);
  job.mutable_request()->set_dataset("mnist");
  job.mutable_request()->set_epochs(3);
  job.mutable_created_time()->set_seconds(1714564803);
  job.set_error("loss is NaN");
  job.set_last_sequence(7);
  const std::string details = JobDetails(job);
  EXPECT_THAT(details, HasSubstr("job_id:                     job-1\n"));
  EXPECT_THAT(details, HasSubstr("state:                      failed\n"));
  EXPECT_THAT(details, HasSubstr("epochs:                     3\n"));
  EXPECT_THAT(details, HasSubstr("batch_size:                 default\n"));
  EXPECT_THAT(details, HasSubstr("optimizer:                  default\n"));
  EXPECT_THAT(details, HasSubstr("deploy_when_done:           false\n"));
  EXPECT_THAT(details, HasSubstr("created_time:               2024-05-01T12:00:03Z\n"));
  EXPECT_THAT(details, HasSubstr("start_time:                 -\n"));
  EXPECT_THAT(details, HasSubstr("latest_epoch:               -\n"));
  EXPECT_THAT(details, HasSubstr("error:                      loss is NaN\n"));
  EXPECT_THAT(details, HasSubstr("last_sequence:              7\n"));
}

TEST(ClientFormatTest, ModelsTable) {
  v1::ListModelsResponse models;
  v1::Model* model = models.add_models();
  model->set_model_id("model-1");
  model->set_job_id("job-1");
  model->set_dataset("mnist");
  model->mutable_created_time()->set_seconds(1714564803);
  model->mutable_test_metrics()->set_accuracy(0.9891);
  model->mutable_test_metrics()->set_count(10000);
  model->set_size_bytes(1234);
  model->set_sha256("0123456789abcdef0123");
  model->set_deployed(true);
  v1::Model* imported = models.add_models();
  imported->set_model_id("model-2");
  imported->set_dataset("mnist");
  imported->set_size_bytes(1234);
  imported->set_sha256("fedcba98765432100123");
  EXPECT_EQ(
      ModelsTable(models),
      "MODEL ID  JOB ID  DATASET  CREATED               TEST ACC  SIZE  SHA256        DEPLOYED\n"
      "model-1   job-1   mnist    2024-05-01T12:00:03Z  98.91%    1234  0123456789ab  *\n"
      "model-2   -       mnist    -                     -         1234  fedcba987654  -\n");
  EXPECT_EQ(ModelsTable(v1::ListModelsResponse()),
            "MODEL ID  JOB ID  DATASET  CREATED  TEST ACC  SIZE  SHA256  DEPLOYED\n");
}

TEST(ClientFormatTest, EvaluationReport) {
  v1::EvaluateResponse evaluation;
  evaluation.set_model_id("model-1");
  evaluation.set_dataset("mnist");
  evaluation.set_split(v1::DATASET_SPLIT_TEST);
  evaluation.set_accuracy(0.75);
  evaluation.set_loss(0.5);
  evaluation.set_count(12);
  for (int label = 0; label < 2; ++label) {
    v1::ClassMetrics* c = evaluation.add_per_class();
    c->set_label(label);
    c->set_precision(label == 0 ? 1.0 : 0.5);
    c->set_recall(label == 0 ? 0.625 : 1.0);
    c->set_f1(label == 0 ? 0.7692 : 0.6667);
    c->set_support(label == 0 ? 8 : 4);
  }
  for (const auto& counts : {std::vector<int64_t>{5, 3}, std::vector<int64_t>{0, 4}}) {
    evaluation.add_confusion_matrix()->mutable_counts()->Add(counts.begin(), counts.end());
  }
  EXPECT_EQ(EvaluationReport(evaluation),
            "model:    model-1\n"
            "dataset:  mnist\n"
            "split:    test\n"
            "count:    12\n"
            "accuracy: 75.00%\n"
            "loss:     0.5000\n"
            "\n"
            "LABEL  PRECISION  RECALL  F1      SUPPORT\n"
            "0      1.0000     0.6250  0.7692  8\n"
            "1      0.5000     1.0000  0.6667  4\n"
            "\n"
            "confusion matrix (rows = true label, columns = predicted label):\n"
            "   0  1\n"
            "0  5  3\n"
            "1  0  4\n");
}

TEST(ClientFormatTest, PredictionReport) {
  v1::PredictResponse response;
  v1::Prediction* p = response.add_predictions();
  p->set_label(7);
  p->set_probability(0.9876f);
  v1::LabelProbability* top = p->add_top_k();
  top->set_label(7);
  top->set_probability(0.9876f);
  top = p->add_top_k();
  top->set_label(1);
  top->set_probability(0.01f);
  EXPECT_EQ(PredictionReport({"seven.png"}, response, /*top_k=*/1), "seven.png: 7 (p=0.9876)\n");
  EXPECT_EQ(PredictionReport({"seven.png"}, response, /*top_k=*/2),
            "seven.png: 7 (p=0.9876)\n"
            "  top 1: 7 (p=0.9876)\n"
            "  top 2: 1 (p=0.0100)\n");
}

TEST(ClientFormatTest, JsonLine) {
  v1::JobEvent event;
  event.set_job_id("job-1");
  event.set_sequence(3);
  event.mutable_epoch_end()->set_epoch(1);
  const std::string json = ToJsonLine(event);
  EXPECT_THAT(json, HasSubstr("\"job_id\":\"job-1\""));
  EXPECT_THAT(json, HasSubstr("\"sequence\":\"3\""));
  EXPECT_THAT(json, HasSubstr("\"epoch_end\":{"));
  EXPECT_THAT(json, HasSubstr("\"train_loss\":0"));  // Defaults are printed too.
  EXPECT_THAT(json, Not(HasSubstr("\n")));
}

v1::JobEvent Event(int64_t sequence) {
  v1::JobEvent event;
  event.set_job_id("job-1");
  event.set_sequence(sequence);
  return event;
}

TEST(ClientJobEventPrinterTest, LogOutputSkipsProgress) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/false, /*json=*/false);
    v1::JobEvent queued = Event(1);
    queued.mutable_queued()->set_position(2);
    printer.Print(queued);
    v1::JobEvent started = Event(2);
    started.mutable_started()->set_device("cpu");
    started.mutable_started()->set_train_images(60000);
    started.mutable_started()->set_epochs(1);
    printer.Print(started);
    v1::JobEvent progress = Event(3);
    progress.mutable_progress()->set_batch(1);
    printer.Print(progress);
    v1::JobEvent epoch = Event(4);
    epoch.mutable_epoch_end()->set_epoch(1);
    epoch.mutable_epoch_end()->set_epochs(1);
    printer.Print(epoch);
    v1::JobEvent finished = Event(5);
    finished.mutable_finished()->set_state(v1::JOB_STATE_SUCCEEDED);
    finished.mutable_finished()->set_model_id("model-1");
    finished.mutable_finished()->mutable_test_metrics()->set_accuracy(0.9891);
    finished.mutable_finished()->mutable_test_metrics()->set_loss(0.0345);
    finished.mutable_finished()->mutable_test_metrics()->set_count(10000);
    printer.Print(finished);
  }
  EXPECT_EQ(out.str(),
            "job job-1 queued (position 2)\n"
            "job job-1 started on cpu: 60000 training images, 1 epochs\n"
            "epoch 1/1 |████████████████████| 100% loss 0.0000 acc 0.00% 0 img/s elapsed 0.0s "
            "eta 0.0s\n"
            "job job-1 succeeded: model model-1, test accuracy 98.91% (loss 0.0345, 10000 "
            "images)\n");
}

// A checkpoint is the server's bookkeeping: no line; a resumed job says where it continues.
TEST(ClientJobEventPrinterTest, CheckpointsArePrivateResumesAreShown) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/false, /*json=*/false);
    v1::JobEvent checkpoint = Event(1);
    checkpoint.mutable_checkpoint_saved()->set_epoch(2);
    checkpoint.mutable_checkpoint_saved()->set_batch(0);
    printer.Print(checkpoint);
    v1::JobEvent resumed = Event(2);
    resumed.mutable_resumed()->set_epoch(3);
    resumed.mutable_resumed()->set_batch(250);
    printer.Print(resumed);
  }
  EXPECT_EQ(out.str(), "job job-1 resumed at epoch 3, batch 250\n");

  // On a terminal, a resume ends a progress line still being redrawn; a checkpoint leaves it.
  out.str("");
  {
    JobEventPrinter printer(out, /*terminal=*/true, /*json=*/false);
    v1::JobEvent progress = Event(1);
    progress.mutable_progress()->set_batches(2);
    printer.Print(progress);
    v1::JobEvent checkpoint = Event(2);
    checkpoint.mutable_checkpoint_saved()->set_epoch(1);
    printer.Print(checkpoint);
    EXPECT_EQ(out.str().find('\n'), std::string::npos);
    v1::JobEvent resumed = Event(3);
    resumed.mutable_resumed()->set_epoch(1);
    resumed.mutable_resumed()->set_batch(1);
    printer.Print(resumed);
  }
  EXPECT_THAT(out.str(), HasSubstr("\rjob job-1 resumed at epoch 1, batch 1\x1b[K\n"));
}

TEST(ClientJobEventPrinterTest, JsonShowsCheckpointsAndResumes) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/false, /*json=*/true);
    v1::JobEvent checkpoint = Event(1);
    checkpoint.mutable_checkpoint_saved()->set_epoch(2);
    checkpoint.mutable_checkpoint_saved()->set_batch(40);
    printer.Print(checkpoint);
    v1::JobEvent resumed = Event(2);
    resumed.mutable_resumed()->set_epoch(2);
    resumed.mutable_resumed()->set_batch(40);
    printer.Print(resumed);
  }
  const std::string text = out.str();
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_THAT(text, HasSubstr("\"checkpoint_saved\":{\"epoch\":2,\"batch\":\"40\"}"));
  EXPECT_THAT(text, HasSubstr("\"resumed\":{\"epoch\":2,\"batch\":\"40\"}"));
}

TEST(ClientJobEventPrinterTest, TerminalRedrawsProgressInPlace) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/true, /*json=*/false);
    v1::JobEvent progress = Event(1);
    progress.mutable_progress()->set_epoch(1);
    progress.mutable_progress()->set_epochs(1);
    progress.mutable_progress()->set_batch(1);
    progress.mutable_progress()->set_batches(2);
    printer.Print(progress);
    printer.Print(progress);
    v1::JobEvent failed = Event(2);
    failed.mutable_finished()->set_state(v1::JOB_STATE_FAILED);
    failed.mutable_finished()->set_error("boom");
    printer.Print(failed);
  }
  const std::string text = out.str();
  EXPECT_EQ(text.find('\n'), text.rfind('\n'));  // One line ends: the final one.
  EXPECT_THAT(text, HasSubstr("|██████████          |  50% 1/2"));
  EXPECT_THAT(text, HasSubstr("\x1b[K"));
  EXPECT_THAT(text, HasSubstr("\rjob job-1 failed\x1b[K\n"));
}

TEST(ClientJobEventPrinterTest, TerminalProgressLineIsEndedOnDestruction) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/true, /*json=*/false);
    v1::JobEvent progress = Event(1);
    progress.mutable_progress()->set_batches(2);
    printer.Print(progress);
  }
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(ClientJobEventPrinterTest, JsonPrintsEveryEventOnItsOwnLine) {
  std::ostringstream out;
  {
    JobEventPrinter printer(out, /*terminal=*/true, /*json=*/true);
    v1::JobEvent progress = Event(1);
    progress.mutable_progress()->set_batches(2);
    printer.Print(progress);
    printer.Print(Event(2));
  }
  const std::string text = out.str();
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_EQ(text.front(), '{');
  EXPECT_THAT(text, HasSubstr("\"progress\":{"));
  EXPECT_THAT(text, Not(HasSubstr("\r")));
}

}  // namespace
}  // namespace classifier::cli
