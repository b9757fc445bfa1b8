// Measures newly imported models on their dataset's test split off the import's path: an import
// answers as soon as its model is durable (file synced, record committed), and the figures reach
// ListModels a moment later. Evaluating 10,000 test images costs several times everything else
// an import does, so doing it inline capped imports at a few dozen per second.
//
// Best effort by design: the figures are derived data that Evaluate can measure again at any
// time, so evaluations still waiting when the server stops are dropped, and so are those that
// arrive while `max_pending` already wait (each logged; the model then shows no test figures).
#ifndef CLASSIFIER_SERVER_BACKGROUND_EVALUATOR_H_
#define CLASSIFIER_SERVER_BACKGROUND_EVALUATOR_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "model/network.h"
#include "server/dataset_catalog.h"
#include "server/model_registry.h"
#include "server/mutex.h"

namespace classifier {

class BackgroundEvaluator {
 public:
  // `datasets` and `models` must outlive the evaluator. Starts its one thread (one LibTorch
  // compute thread).
  BackgroundEvaluator(DatasetCatalog* datasets, ModelRegistry* models, int max_pending);
  // Drops the evaluations still waiting, lets the running one finish, joins the thread.
  ~BackgroundEvaluator();
  BackgroundEvaluator(const BackgroundEvaluator&) = delete;
  BackgroundEvaluator& operator=(const BackgroundEvaluator&) = delete;

  // Queues the evaluation of `network` (registered as `model_id`) on `dataset`'s test split,
  // whose result goes to ModelRegistry::SetTestMetrics. False (and logged) when `max_pending`
  // evaluations already wait. Thread-safe.
  bool Submit(std::string model_id, std::string dataset,
              std::shared_ptr<const TrainedModel> network);

 private:
  struct Pending {
    std::string model_id;
    std::string dataset;
    std::shared_ptr<const TrainedModel> network;
  };
  void Loop();
  void Evaluate(const Pending& pending);

  DatasetCatalog* const datasets_;
  ModelRegistry* const models_;
  const int max_pending_;

  Mutex mu_;
  CondVar changed_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: started after the rest exists, joined first.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_BACKGROUND_EVALUATOR_H_
