//! The configuration's tests, by part of the file they exercise.

mod certificates;
mod compose;
mod durations;
mod existing;
mod files;
mod global;
mod loading;
mod probe;
mod services;
mod support;
mod swarm;
