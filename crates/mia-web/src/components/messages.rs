//! Messages about input the lab could not use; the page keeps working.

use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct MessagesProps {
    /// The messages.
    pub messages: Vec<String>,
    /// Dismiss them.
    pub on_dismiss: Callback<()>,
}

/// The message list.
#[function_component(Messages)]
pub fn messages(p: &MessagesProps) -> Html {
    if p.messages.is_empty() {
        return html! {};
    }
    let cb = p.on_dismiss.clone();
    html! {
        <div class="messages" role="alert" data-testid="error">
            { for p.messages.iter().map(|m| html! { <p>{ m.clone() }</p> }) }
            <button onclick={Callback::from(move |_| cb.emit(()))}>{ "dismiss" }</button>
        </div>
    }
}
