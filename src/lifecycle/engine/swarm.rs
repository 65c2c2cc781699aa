//! `mode: swarm`: a managed service as a replicated swarm service, behind the same `Engine`
//! trait as containers. "Started" means scaled up to its `replicas`, "stopped" scaled to 0;
//! the service itself stays, so its name and virtual IP stay on the overlay network.
//!
//! - Start: make the overlay network exist (attachable, so a wakeproxy running as a plain
//!   container can join it), create the service or update it (the version index it was read
//!   at, retried on "update out of sequence"), pinning the image so that no node pulls what
//!   the manager has.
//! - Readiness: the manager polls `progress`, which reads the service's tasks: a task of this
//!   start that failed or was rejected fails the start at once with the task's `Status.Err`,
//!   exit code and last log lines; a running task lets the manager's HTTP probe begin
//!   (through the name, so through the VIP).
//! - Events: the containers of our tasks carry our labels, so their `die` events reach the
//!   events follower, which makes a start look at its tasks at once. Task states are polled
//!   as well while starting, so failures on other nodes (whose container events this daemon
//!   never sees) are noticed too.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::docker::{Docker, DockerError, ServiceInfo, Swarm, TaskInfo, is_not_manager};

use crate::lifecycle::spec::{
    LABEL_HASH, LABEL_MANAGED, LABEL_SERVICE, ManagedSpec, STOP_TIMEOUT_SECS,
};

use super::swarm_tasks::{is_terminal, latest, short, task_failure};
use super::{
    Engine, EngineError, EngineKind, Found, IdleStop, Observed, Progress, Replicas,
    START_LOG_LINES, ours,
};
use crate::lifecycle::shared_activity::with_activity;

/// Budget of the Docker calls made for `/proxy/status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Swarm services over the Engine API of a swarm manager.
pub(crate) struct SwarmEngine {
    swarm: Swarm,
    /// For `/proxy/status`, with a short budget.
    quick: Swarm,
    /// Per service id, the tasks that existed before its latest scale-up: a start is judged
    /// by the tasks it caused, not by failures left over from an earlier one.
    before: Mutex<HashMap<String, HashSet<String>>>,
    /// This proxy, as the activity labels name it.
    identity: String,
}

impl SwarmEngine {
    pub(crate) fn new(docker: Docker) -> SwarmEngine {
        SwarmEngine {
            swarm: Swarm::from_docker(docker.clone()),
            quick: Swarm::new(docker, STATUS_TIMEOUT),
            before: Mutex::new(HashMap::new()),
            identity: proxy_identity(),
        }
    }

    pub(super) fn swarm(&self) -> &Swarm {
        &self.swarm
    }

    pub(super) fn quick(&self) -> &Swarm {
        &self.quick
    }

    pub(super) fn identity(&self) -> &str {
        &self.identity
    }

    fn require_manager(&self, name: &str) -> Result<(), EngineError> {
        let info = self.swarm.info()?;
        if info.manager {
            return Ok(());
        }
        Err(EngineError(format!(
            "service {name} has mode: swarm, but the Docker daemon at {} is not a swarm manager \
             (swarm state: {}); run `docker swarm init` there or point wakeproxy at a manager",
            self.swarm.docker().socket().display(),
            if info.state.is_empty() {
                "unknown"
            } else {
                &info.state
            }
        )))
    }

    /// The overlay network, created (attachable) when missing.
    fn ensure_network(&self, net: &str) -> Result<(), EngineError> {
        match self.swarm.network(net)? {
            None => {
                log::info!("creating overlay network {net} (attachable)");
                self.swarm
                    .create_overlay_network(net, &[(LABEL_MANAGED, "true")])?;
                Ok(())
            }
            Some(n) if n.driver != "overlay" => Err(EngineError(format!(
                "network {net} exists with driver {}, but swarm services need an overlay network: \
                 remove it (docker network rm {net}) so wakeproxy creates an overlay one, or set \
                 another docker_network",
                n.driver
            ))),
            Some(n) => {
                if !n.attachable {
                    log::warn!(
                        "overlay network {net} is not attachable: a wakeproxy running as a plain \
                         container cannot join it (one running as a swarm service can)"
                    );
                }
                Ok(())
            }
        }
    }

    /// The image reference to put in the service: pinned to what this node has, so swarm
    /// does not pull it (see `Swarm::pinned_image`).
    fn image_for(&self, service: &str, image: &str) -> Result<String, EngineError> {
        match self.swarm.pinned_image(image)? {
            Some(pinned) => {
                self.check_image_reaches_nodes(service, image, &pinned)?;
                Ok(pinned)
            }
            None => {
                log::info!("image {image} is not on this node: the swarm nodes will pull it");
                Ok(image.to_string())
            }
        }
    }

    /// Creates the service from `want`; none of its tasks predates this start.
    fn create(
        &self,
        name: &str,
        want: &Value,
        image: &str,
        replicas: u64,
    ) -> Result<String, EngineError> {
        let id = self.swarm.create_service(want).map_err(|e| match e {
            DockerError::Conflict(m) => {
                EngineError(format!("cannot create swarm service {name}: {m}"))
            }
            e => e.into(),
        })?;
        log::info!(
            "created swarm service {name} ({}) from {image} with {replicas} replica(s)",
            short(&id)
        );
        self.before.lock().insert(id.clone(), HashSet::new());
        Ok(id)
    }

    /// Remembers the tasks service `id` has before this start, and says whether one of them
    /// runs or is on its way. None while scaled up means swarm gave up on them (restart
    /// attempts used up): the start then forces new ones.
    fn note_tasks_before(&self, id: &str) -> Result<bool, EngineError> {
        let tasks = self.swarm.tasks(id)?;
        let alive = tasks
            .iter()
            .any(|t| t.desired_state == "running" && !is_terminal(t));
        let baseline = tasks.into_iter().map(|t| t.id).collect();
        self.before.lock().insert(id.to_string(), baseline);
        Ok(alive)
    }

    /// Brings existing service `id` to `target`: the whole spec when its settings or image
    /// changed, else its replica count, else new tasks when none was alive when `judged`
    /// (the service's version then, and whether a task was alive). Returns its id.
    fn update_to(
        &self,
        spec: &ManagedSpec,
        id: &str,
        target: &DesiredService,
        judged: (u64, bool),
    ) -> Result<String, EngineError> {
        let name = spec.name.as_str();
        let (mut foreign, mut forced) = (false, false);
        let now = SystemTime::now();
        let outcome = self.swarm.update_service_with(id, &mut |s| {
            if !ours(&s.labels, &spec.instance) {
                foreign = true;
                return None;
            }
            if !target.is_current(s) {
                return Some(with_activity(target.want.clone(), now, &self.identity));
            }
            // Changed since its tasks were judged, or just before (another proxy scaled it up,
            // or forced new tasks): those tasks are on their way; forcing more would replace
            // them.
            let alive = judged.1 || s.version != judged.0 || just_changed(s, now);
            let (new, force) = scaled_spec(s, target.replicas, alive)?;
            forced |= force;
            Some(with_activity(new, now, &self.identity))
        })?;
        if foreign {
            return Err(EngineError(foreign_service_message(name)));
        }
        let Some((read, updated)) = outcome else {
            return Err(EngineError(format!(
                "swarm service {name} was removed while starting"
            )));
        };
        let (from, replicas, image) = (read.replicas.unwrap_or(0), target.replicas, &target.image);
        match (updated, target.is_current(&read)) {
            (false, _) => log::info!("swarm service {name} already has {from} replica(s)"),
            (true, true) if forced => log::info!(
                "swarm service {name} has {from} replica(s) but no task runs or starts: forcing new tasks"
            ),
            (true, true) => {
                log::info!("scaling swarm service {name} from {from} to {replicas} replicas")
            }
            (true, false) => log::info!(
                "settings of swarm service {name} changed: updating it (from {from} to {replicas} replicas, image {image})"
            ),
        }
        Ok(read.id)
    }

    /// Tasks of service `id`, or `None` when the service is gone.
    fn tasks_of(&self, id: &str) -> Result<Option<Vec<TaskInfo>>, EngineError> {
        match self.swarm.tasks(id) {
            Ok(t) if !t.is_empty() => Ok(Some(t)),
            Ok(t) => Ok(self.swarm.service(id)?.map(|_| t)),
            Err(DockerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Scales service `id` to 0, unless `keep` (asked of every read of it) says to keep it,
    /// and waits for its tasks to end (each gets `STOP_TIMEOUT_SECS` after SIGTERM).
    pub(super) fn scale_to_zero(
        &self,
        id: &str,
        keep: &mut dyn FnMut(&ServiceInfo) -> bool,
    ) -> Result<(), EngineError> {
        let outcome = self.swarm.update_service_with(id, &mut |s| {
            if s.replicas == Some(0) || s.replicas.is_none() || keep(s) {
                return None;
            }
            let mut new = s.spec.clone();
            new["Mode"]["Replicated"]["Replicas"] = json!(0);
            Some(new)
        });
        match outcome {
            Ok(None) | Err(DockerError::NotFound(_)) => Ok(()),
            Ok(Some((read, updated))) => {
                if updated {
                    log::info!(
                        "scaling swarm service {} from {} to 0 replicas",
                        read.name,
                        read.replicas.unwrap_or(0)
                    );
                }
                if updated || read.replicas == Some(0) {
                    self.wait_tasks_ended(&read.id);
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Waits (up to the grace period and a little) until the tasks service `id` has now have
    /// ended. Tasks that appear later are not waited for: another proxy may scale the service
    /// up again meanwhile.
    fn wait_tasks_ended(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(STOP_TIMEOUT_SECS + 5);
        let Ok(tasks) = self.swarm.tasks(id) else {
            return;
        };
        let ending: HashSet<String> = tasks
            .into_iter()
            .filter(|t| !is_terminal(t))
            .map(|t| t.id)
            .collect();
        while Instant::now() < deadline && !ending.is_empty() {
            match self.swarm.tasks(id) {
                Ok(tasks)
                    if !tasks
                        .iter()
                        .any(|t| ending.contains(&t.id) && !is_terminal(t)) =>
                {
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// This proxy, as the `wakeproxy.last-activity-by` label names it: `host:pid`.
fn proxy_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "unknown" } else { host };
    format!("{host}:{}", std::process::id())
}

/// What a start wants a swarm service to be.
struct DesiredService {
    /// The whole service spec, for a service whose settings changed.
    want: Value,
    /// The image reference, pinned (see `SwarmEngine::image_for`).
    image: String,
    /// The settings hash its `LABEL_HASH` label carries.
    hash: String,
    replicas: u64,
}

impl DesiredService {
    /// Whether service `s` already has these settings and image (and is replicated), so only
    /// its replica count may need to change.
    fn is_current(&self, s: &ServiceInfo) -> bool {
        s.labels.get(LABEL_HASH) == Some(&self.hash)
            && s.image == self.image
            && s.replicas.is_some()
    }
}

/// The spec that brings a service whose settings are current to `replicas`, and whether it
/// forces new tasks: another replica count, or, when the count is right but no task is
/// `alive`, a bumped `ForceUpdate`. None when nothing needs to change.
fn scaled_spec(s: &ServiceInfo, replicas: u64, alive: bool) -> Option<(Value, bool)> {
    let mut new = s.spec.clone();
    if s.replicas == Some(replicas) {
        if alive {
            return None;
        }
        let force = new["TaskTemplate"]["ForceUpdate"].as_u64().unwrap_or(0);
        new["TaskTemplate"]["ForceUpdate"] = json!(force + 1);
        return Some((new, true));
    }
    new["Mode"]["Replicated"]["Replicas"] = json!(replicas);
    Some((new, false))
}

/// How long after a change of a service its new tasks may take to appear.
const TASKS_APPEAR_WITHIN: Duration = Duration::from_secs(10);

/// Whether service `s` was changed within `TASKS_APPEAR_WITHIN` of `now` (its tasks may not
/// exist yet).
fn just_changed(s: &ServiceInfo, now: SystemTime) -> bool {
    crate::base::rfc3339::parse_utc(&s.updated_at).is_some_and(|at| {
        now.duration_since(at)
            .map_or(true, |ago| ago < TASKS_APPEAR_WITHIN)
    })
}

impl Engine for SwarmEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Swarm
    }

    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        let name = spec.name.as_str();
        self.require_manager(name)?;
        let replicas = u64::from(spec.container.swarm.map_or(1, |s| s.replicas));
        if let Some(net) = &spec.network {
            self.ensure_network(net)?;
        }
        let image = self.image_for(name, &spec.container.image)?;
        let want = with_activity(
            spec.service_spec(&image, replicas),
            SystemTime::now(),
            &self.identity,
        );
        let Some(existing) = self.swarm.service(name)? else {
            return self.create(name, &want, &image, replicas);
        };
        if !ours(&existing.labels, &spec.instance) {
            return Err(EngineError(foreign_service_message(name)));
        }
        let alive = self.note_tasks_before(&existing.id)?;
        let target = DesiredService {
            want,
            image,
            hash: spec.settings_hash(),
            replicas,
        };
        self.update_to(spec, &existing.id, &target, (existing.version, alive))
    }

    fn progress(&self, id: &str, name: &str, _internal_port: u16) -> Result<Progress, EngineError> {
        let Some(tasks) = self.tasks_of(id)? else {
            return Ok(Progress::Failed(format!(
                "swarm service {name} was removed while starting"
            )));
        };
        let failed = {
            let before = self.before.lock();
            let known = before.get(id);
            latest(
                tasks
                    .iter()
                    .filter(|t| t.has_failed() && !known.is_some_and(|k| k.contains(&t.id))),
            )
            .cloned()
        };
        if let Some(t) = failed {
            let logs = (!t.container_id.is_empty()).then(|| {
                self.swarm
                    .task_logs(&t.id, START_LOG_LINES)
                    .unwrap_or_else(|e| format!("(logs unavailable: {e})"))
            });
            return Ok(Progress::Failed(task_failure(name, &t, logs.as_deref())));
        }
        if self.serving(&tasks) {
            // Swarm only calls a task with a HEALTHCHECK running once it is healthy.
            return Ok(Progress::Running { health: None });
        }
        Ok(Progress::Pending)
    }

    fn observe(&self, id: &str, _internal_port: u16) -> Result<Option<Observed>, EngineError> {
        let Some(svc) = self.swarm.service(id)? else {
            return Ok(None);
        };
        let tasks = self.swarm.tasks(&svc.id)?;
        let last_failed = latest(tasks.iter().filter(|t| t.has_failed()));
        Ok(Some(Observed {
            running: tasks.iter().any(TaskInfo::is_running),
            exit_code: last_failed.and_then(|t| t.exit_code).unwrap_or(0),
            oom_killed: false,
            health: None,
            host_port: None,
            id: svc.id,
        }))
    }

    fn logs_tail(&self, id: &str, n: usize) -> String {
        let task = match self.swarm.tasks(id) {
            Ok(tasks) => latest(tasks.iter()).cloned(),
            Err(e) => return format!("(logs unavailable: {e})"),
        };
        match task {
            Some(t) => self
                .swarm
                .task_logs(&t.id, n)
                .unwrap_or_else(|e| format!("(logs unavailable: {e})")),
            None => "(no task)".to_string(),
        }
    }

    /// Scales to 0 and waits for the tasks to end (each gets `STOP_TIMEOUT_SECS` after SIGTERM).
    fn stop(&self, id: &str) -> Result<(), EngineError> {
        self.scale_to_zero(id, &mut |_| false)
    }

    fn stop_when_idle(
        &self,
        id: &str,
        idle: Duration,
        now: SystemTime,
    ) -> Result<IdleStop, EngineError> {
        self.scale_down_when_idle(id, idle, now)
    }

    fn shares_activity(&self) -> bool {
        true
    }

    fn record_activity(
        &self,
        spec: &ManagedSpec,
        id: &str,
        last: SystemTime,
    ) -> Result<bool, EngineError> {
        self.write_activity(&spec.instance, id, last)
    }

    fn recheck_after_failed_forward(&self) -> bool {
        true
    }

    fn list_ours(&self, instance: &str) -> Result<Vec<Found>, EngineError> {
        let services = match self.swarm.services(&ManagedSpec::instance_label(instance)) {
            Ok(s) => s,
            // Not a manager (or not in a swarm): there are no swarm services to take stock of.
            Err(e) if is_not_manager(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut found = Vec::new();
        for s in services.into_iter().filter(|s| ours(&s.labels, instance)) {
            let tasks = self.swarm.tasks(&s.id)?;
            found.push(Found {
                service: s.labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                settings_hash: s.labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                running: tasks.iter().any(TaskInfo::is_running),
                up: s.replicas.unwrap_or(0) > 0,
                id: s.id,
            });
        }
        Ok(found)
    }

    fn foreign_holds_name(&self, name: &str, instance: &str) -> Result<bool, EngineError> {
        match self.swarm.service(name) {
            Ok(s) => Ok(s.is_some_and(|s| !ours(&s.labels, instance))),
            Err(e) if is_not_manager(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn ping(&self) -> Result<(), EngineError> {
        self.swarm.docker().negotiate()?;
        Ok(())
    }

    fn replicas(&self, name: &str) -> Option<Replicas> {
        let (desired, tasks) = match self.quick.service(name) {
            Ok(Some(s)) => (Some(s.replicas.unwrap_or(0)), self.quick.tasks(&s.id).ok()),
            Ok(None) => (Some(0), Some(Vec::new())),
            Err(e) => {
                log::debug!("status of swarm service {name}: {e}");
                (None, None)
            }
        };
        let running = tasks
            .as_ref()
            .map(|t| t.iter().filter(|t| t.is_running()).count() as u64);
        let tasks = tasks.and_then(|t| self.task_places(&t));
        Some(Replicas {
            desired,
            running,
            tasks,
        })
    }
}

/// The explanation given when a swarm service wakeproxy did not create holds a service's name.
pub(crate) fn foreign_service_message(name: &str) -> String {
    format!(
        "a swarm service named {name} exists that wakeproxy did not create (or that belongs to another \
         wakeproxy instance); wakeproxy will not touch it: rename or remove it (docker service rm {name}) \
         or rename the service"
    )
}
