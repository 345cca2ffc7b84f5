//! The CronJob `feast-<cr>` that runs Feast commands inside the feature-server Deployment (spec §2.3).

use fieldwise_api::v1::{FeastCronJob, FeatureStoreSpec};
use k8s_openapi::{
    api::{
        batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec},
        core::v1::{Container, PodSecurityContext, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::featurestore::{
    context::GraphContext,
    names::{ServiceType, base_name, service_labels, service_name},
};
use crate::security::{restricted_container, restricted_pod};

/// The commands run when the user gives none: apply the repository, then materialize up to now.
pub const DEFAULT_COMMANDS: [&str; 2] = [
    "feast apply",
    "feast materialize-incremental $(date -u +'%Y-%m-%dT%H:%M:%S')",
];

/// The CronJob. Without a schedule it is suspended and yearly, so it only runs when triggered by hand.
pub fn cron_job(
    cr_name: &str,
    namespace: &str,
    applied: &FeatureStoreSpec,
    context: &GraphContext,
) -> CronJob {
    let default_config = FeastCronJob::default();
    let config = applied.cron_job.as_ref().unwrap_or(&default_config);
    let scheduled = config
        .schedule
        .as_deref()
        .is_some_and(|schedule| !schedule.is_empty());
    let job = config.job_spec.as_ref();
    let containers = exec_containers(cr_name, config, context);
    let (main, init) = containers
        .split_last()
        .map_or((Vec::new(), Vec::new()), |(last, rest)| {
            (vec![last.clone()], rest.to_vec())
        });
    CronJob {
        metadata: ObjectMeta {
            name: Some(base_name(cr_name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(service_labels(cr_name, ServiceType::CronJob)),
            annotations: config.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(CronJobSpec {
            schedule: if scheduled {
                config.schedule.clone().unwrap_or_default()
            } else {
                "@yearly".to_owned()
            },
            time_zone: config.time_zone.clone(),
            suspend: if scheduled {
                config.suspend
            } else {
                Some(true)
            },
            // Replace is the default of the unscheduled job only (a run triggered by hand
            // supersedes one still running); a scheduled job gets the user's policy or the
            // API server's (Allow), as in Feast.
            concurrency_policy: config
                .concurrency_policy
                .clone()
                .or_else(|| (!scheduled).then(|| "Replace".to_owned())),
            starting_deadline_seconds: config
                .starting_deadline_seconds
                .or((!scheduled).then_some(5)),
            successful_jobs_history_limit: config.successful_jobs_history_limit,
            failed_jobs_history_limit: config.failed_jobs_history_limit,
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    parallelism: job.and_then(|j| j.parallelism),
                    completions: job.and_then(|j| j.completions),
                    active_deadline_seconds: job.and_then(|j| j.active_deadline_seconds),
                    pod_failure_policy: job.and_then(|j| j.pod_failure_policy.clone()),
                    backoff_limit: job.and_then(|j| j.backoff_limit),
                    backoff_limit_per_index: job.and_then(|j| j.backoff_limit_per_index),
                    max_failed_indexes: job.and_then(|j| j.max_failed_indexes),
                    ttl_seconds_after_finished: job.and_then(|j| j.ttl_seconds_after_finished),
                    completion_mode: job.and_then(|j| j.completion_mode.clone()),
                    suspend: job.and_then(|j| j.suspend),
                    pod_replacement_policy: job.and_then(|j| j.pod_replacement_policy.clone()),
                    template: PodTemplateSpec {
                        metadata: job.and_then(|j| j.pod_template_annotations.clone()).map(
                            |annotations| ObjectMeta {
                                annotations: Some(annotations),
                                ..ObjectMeta::default()
                            },
                        ),
                        spec: Some(PodSpec {
                            service_account_name: Some(service_name(cr_name, ServiceType::CronJob)),
                            restart_policy: Some("Never".to_owned()),
                            // Restricted, as the Feast operator runs it: UID 1001 (the
                            // CronJob's API has no security context of its own), except on
                            // OpenShift, which assigns each namespace its own UID range and
                            // refuses pods that pick one outside it.
                            security_context: Some(restricted_pod(Some(&PodSecurityContext {
                                run_as_user: (!context.openshift).then_some(1001),
                                ..PodSecurityContext::default()
                            }))),
                            init_containers: (!init.is_empty()).then_some(init),
                            containers: main,
                            node_selector: config
                                .container_configs
                                .as_ref()
                                .and_then(|c| c.container.node_selector.clone()),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
        }),
        status: None,
    }
}

/// One `kubectl exec` container per command, `feast-0`, `feast-1`, …
fn exec_containers(cr_name: &str, config: &FeastCronJob, context: &GraphContext) -> Vec<Container> {
    let container = config.container_configs.as_ref();
    let commands: Vec<String> = match container
        .and_then(|c| c.commands.clone())
        .filter(|c| !c.is_empty())
    {
        Some(commands) => commands,
        None => DEFAULT_COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
    };
    let image = container
        .and_then(|c| c.container.image.clone())
        .unwrap_or_else(|| context.images.cron_job.clone());
    commands
        .iter()
        .enumerate()
        .map(|(index, command)| Container {
            name: format!("feast-{index}"),
            image: Some(image.clone()),
            image_pull_policy: container.and_then(|c| c.container.image_pull_policy.clone()),
            command: Some(
                [
                    "kubectl",
                    "exec",
                    &format!("deploy/{}", base_name(cr_name)),
                    "-i",
                    "--",
                    "bash",
                    "-c",
                    command,
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            env: container.and_then(|c| c.container.env.clone()),
            env_from: container.and_then(|c| c.container.env_from.clone()),
            resources: container.and_then(|c| c.container.resources.clone()),
            security_context: Some(restricted_container()),
            ..Container::default()
        })
        .collect()
}
